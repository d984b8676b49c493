"""scripts/loadtest end to end against a fake Airflow 3 REST API: the real apache-airflow-client calls,
JWT login and renewal, trigger bodies, pacing, read-back, timeout handling and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from loadtest import LoadConfig, ScaleConfig, compare_workers, run_load
from loadtest import __main__ as load_test
from loadtest.config import DAG_PARAM_NAMES
from loadtest.driver import _Pacer

DAG = "helical_model_workflow"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class FakeAirflow:
    """Just enough of /api/v2 for the load test; each run finishes after `polls_to_finish` list calls."""

    def __init__(self, polls_to_finish: int = 2) -> None:
        self.paused, self.polls_to_finish = True, polls_to_finish
        self.runs: dict[str, dict] = {}
        self.ages: dict[str, int] = {}
        self.tokens, self.calls_per_token, self.expire_after = 0, 0, 8
        self.bodies: list[dict] = []
        self.patched: list[str] = []
        self.max_active = 0
        self.foreign = {"dag_run_id": "manual__other", "state": "running"}

    def token_ok(self, header: str | None) -> bool:
        self.calls_per_token += 1
        return header == f"Bearer tok-{self.tokens}" and self.calls_per_token <= self.expire_after

    def active(self) -> int:
        return sum(r["state"] not in ("success", "failed") for r in self.runs.values())

    def tis(self, run: dict) -> list[dict]:
        done = run["state"] in ("success", "failed")
        base = {"dag_id": DAG, "dag_run_id": run["dag_run_id"], "try_number": 1, "map_index": -1,
                "queued_when": run["queued_at"], "scheduled_when": run["queued_at"], "queue": "cpu",
                "start_date": run["start_date"], "end_date": run["end_date"], "duration": 0.5,
                "hostname": "3f9c2a7d41be", "operator": "_PythonDecoratedOperator"}
        runner = base | {"task_id": "run_runner_cpu", "map_index": 0, "operator": "RunnerOperator",
                         "state": run["state"] if done else "queued"}
        skipped = base | {"task_id": "run_runner_gpu", "state": "skipped", "hostname": ""}
        return [base | {"task_id": "discover_datasets", "state": "success"}, runner, skipped]

    def handle(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, object]:
        runs_path = f"/api/v2/dags/{DAG}/dagRuns"
        if path == f"/api/v2/dags/{DAG}" and method == "GET":
            return 200, {"dag_id": DAG, "is_paused": self.paused, "max_active_runs": 16}
        if path == f"/api/v2/dags/{DAG}" and method == "PATCH":
            self.paused = body["is_paused"]
            return 200, {"dag_id": DAG, "is_paused": self.paused}
        if path == runs_path and method == "POST":
            self.bodies.append(body)
            run = {"dag_run_id": body["dag_run_id"], "dag_id": DAG, "state": "queued", "conf": body["conf"],
                   "queued_at": now(), "start_date": None, "end_date": None}
            self.runs[run["dag_run_id"]] = run
            self.ages[run["dag_run_id"]] = 0
            self.max_active = max(self.max_active, self.active())
            return 200, run
        if path == runs_path and method == "GET":
            if "state" in query:  # the pre-flight count of others' active runs
                return 200, {"dag_runs": [self.foreign], "total_entries": 1}
            prefix = query["run_id_prefix_pattern"][0]
            mine = [r for k, r in sorted(self.runs.items()) if k.startswith(prefix)]
            for r in mine:
                self.ages[r["dag_run_id"]] += 1
                age = self.ages[r["dag_run_id"]]
                if r["state"] == "queued":
                    r.update(state="running", start_date=now())
                elif r["state"] == "running" and age > self.polls_to_finish:
                    r.update(state="success", end_date=now())
            offset, limit = int(query.get("offset", ["0"])[0]), int(query["limit"][0])
            return 200, {"dag_runs": mine[offset:offset + limit], "total_entries": len(mine)}
        if m := re.fullmatch(rf"{runs_path}/([^/]+)", path):
            self.patched.append(m.group(1))
            self.runs[m.group(1)].update(state=body["state"], end_date=now())
            return 200, self.runs[m.group(1)]
        if m := re.fullmatch(rf"{runs_path}/([^/]+)/taskInstances", path):
            tis = self.tis(self.runs[m.group(1)])
            return 200, {"task_instances": tis, "total_entries": len(tis)}
        if "/xcomEntries/return_value" in path:
            run_id = path.split("/")[6]
            return 200, {"key": "return_value", "value": json.dumps({"run_id": run_id, "ok": True,
                         "datasets": [{"dataset": "pbmc68k_reduced", "status": "ok", "cells": 100,
                                       "cells_per_second": 50.0}]})}
        return 404, {"detail": f"fake has no {method} {path}"}


@pytest.fixture
def fake() -> Iterator[tuple[FakeAirflow, str]]:
    api = FakeAirflow()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size)) if size else None
            if url.path == "/auth/token":
                ok = body == {"username": "admin", "password": "admin"}
                if ok:
                    api.tokens, api.calls_per_token = api.tokens + 1, 0
                status, out = (201, {"access_token": f"tok-{api.tokens}"}) if ok else (401, {"detail": "no"})
            elif not api.token_ok(self.headers.get("Authorization")):
                status, out = 401, {"detail": "Not authenticated"}
            else:
                status, out = api.handle(method, url.path, parse_qs(url.query), body)
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield api, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def config(url: str, tmp_path: Path, **kw: object) -> LoadConfig:
    base = {"runs": 5, "concurrency": 2, "device": "cpu", "max_cells": 100, "classifier": "off",
            "url": url, "username": "admin", "password": "admin", "token": None, "poll_s": 0.05,
            "timeout_s": 30, "progress": False, "out_dir": tmp_path / "report"}
    return LoadConfig(**(base | kw))  # type: ignore[arg-type]


def test_load_runs_paced_and_reported(fake: tuple[FakeAirflow, str], tmp_path: Path) -> None:
    api, url = fake
    out = run_load(config(url, tmp_path))
    rep = json.loads((out / "report.json").read_text())
    assert rep["summary"]["runs"]["succeeded"] == 5
    assert api.max_active <= 2  # --concurrency held
    assert not api.paused and any("unpaused" in n for n in rep["meta"]["notes"])
    assert any("1 runs not started by this test" in n for n in rep["meta"]["notes"])
    assert api.tokens >= 2  # the JWT expired mid-load and was renewed
    for body in api.bodies:
        assert body["logical_date"] is None  # Airflow 3 rejects a trigger without it
        assert set(body["conf"]) <= set(DAG_PARAM_NAMES)
        assert body["conf"] == {"device": "cpu", "max_cells": 100, "classifier": "off"}
        assert re.fullmatch(r"loadtest__\d{8}T\d{9}Z__\d{4}", body["dag_run_id"])
    assert rep["summary"]["throughput"]["cells_total"] == 500
    assert rep["summary"]["queues"]["cpu"]["tasks"] == 5  # skipped gpu branch left out
    assert "manual__other" not in api.patched
    assert all((out / f).exists() for f in ("report.md", "latency.png", "in_flight.png", "per_worker.png"))


def test_timeout_fails_only_our_unfinished_runs(fake: tuple[FakeAirflow, str], tmp_path: Path) -> None:
    api, url = fake
    api.polls_to_finish = 10**6
    out = run_load(config(url, tmp_path, runs=3, concurrency=None, timeout_s=0.5))
    rep = json.loads((out / "report.json").read_text())
    assert rep["summary"]["runs"]["states"] == {"timed_out": 3}
    assert sorted(api.patched) == sorted(api.runs)  # ours, and nothing else
    assert all(r["state"] == "failed" for r in api.runs.values())


def test_pacer_spaces_triggers_at_the_rate() -> None:
    pacer = _Pacer(LoadConfig(runs=3, rate=30), start=100.0)
    assert pacer.ready(100.0, 0)
    pacer.fired(100.0)
    assert not pacer.ready(101.0, 0) and pacer.ready(102.0, 0)
    capped = _Pacer(LoadConfig(runs=3, concurrency=1), start=0.0)
    assert not capped.ready(5.0, 1) and capped.ready(5.0, 0)


def test_conf_carries_only_set_params_round_robin() -> None:
    cfg = LoadConfig(data=("a.h5ad", "b/*.h5ad"), device="gpu", batch_size=32)
    assert cfg.conf_for(0) == {"data": "a.h5ad", "device": "gpu", "batch_size": 32}
    assert cfg.conf_for(1)["data"] == "b/*.h5ad"
    with pytest.raises(ValueError, match="--device"):
        LoadConfig(device="cuda").validate()


def test_cli_prints_the_report_path_last(fake: tuple[FakeAirflow, str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, url = fake
    # The fake's login, given explicitly: make exports .env's generated password to every test.
    code = load_test.main(["--runs", "2", "--url", url, "--username", "admin", "--password", "admin", "--out",
                           str(tmp_path), "--poll", "0.05", "--no-progress", "--device", "cpu", "--max-cells", "50"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0 and last.endswith("report.json") and Path(last).exists()


def test_cli_names_the_fix_when_login_fails(fake: tuple[FakeAirflow, str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, url = fake
    assert load_test.main(["--url", url, "--username", "admin", "--password", "wrong", "--no-progress"]) == 2
    assert "--username/--password" in capsys.readouterr().err


def test_compare_workers_scales_then_loads_each_count(fake: tuple[FakeAirflow, str],
                                                      tmp_path: Path) -> None:
    api, url = fake
    log = tmp_path / "scaled.txt"
    scale = ScaleConfig(command=f"sh -c 'echo {{n}} >> {log}'")
    base = compare_workers(config(url, tmp_path, runs=2, out_dir=tmp_path / "cmp"), [1, 3], scale)
    assert log.read_text().split() == ["1", "3"]
    comp = json.loads((base / "comparison.json").read_text())
    assert [r["workers"] for r in comp["rows"]] == [1, 3]
    assert comp["scaling_ratio"] is not None
    assert (base / "workers-3" / "report.md").exists() and (base / "comparison.md").exists()
    assert len(api.runs) == 4  # two loads, distinct run ids
