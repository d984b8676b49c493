"""Statistics of scripts/loadtest on recorded task-instance data (REST API shape, fixtures/)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from loadtest import stats

FIXTURE = Path(__file__).parent / "fixtures" / "loadtest_records.json"


@pytest.fixture
def records() -> list[dict]:
    return json.loads(FIXTURE.read_text())


@pytest.fixture
def summary(records: list[dict]) -> dict:
    return stats.summarize(records, "run_runner_")


def test_percentile_interpolates_like_numpy() -> None:
    values = [0.5, 0.8, 1.2, 25.0, 26.5, 34.6, 35.6]
    assert stats.percentile(values, 50) == 25.0
    assert stats.percentile(values, 95) == pytest.approx(35.3)
    assert stats.percentile([4.0], 95) == 4.0
    assert stats.percentile([], 50) is None


def test_describe_ignores_missing_values() -> None:
    assert stats.describe([None, 2.0, 4.0]) == {"n": 2, "p50": 3.0, "p95": pytest.approx(3.9),
                                                "max": 4.0, "mean": 3.0}
    assert stats.describe([])["p50"] is None


@pytest.mark.parametrize("value", [
    '{"run_id": "r", "ok": true, "datasets": [{"dataset": "d", "cells": 5}]}',
    'loading...\n{"run_id": "r", "ok": true, "datasets": [{"dataset": "d", "cells": 5}]}\n',
    ["noise", '{"run_id": "r", "ok": true, "datasets": [{"dataset": "d", "cells": 5}]}'],
    {"run_id": "r", "ok": True, "datasets": [{"dataset": "d", "cells": 5}]},
    b'{"run_id": "r", "ok": true, "datasets": [{"dataset": "d", "cells": 5}]}',
])
def test_runner_summary_parses_every_xcom_form(value: object) -> None:
    assert stats.parse_runner_summary(value)["datasets"][0]["cells"] == 5


@pytest.mark.parametrize("value", [None, "", "not json", '{"other": 1}', [], 42])
def test_runner_summary_absent_when_not_a_summary(value: object) -> None:
    assert stats.parse_runner_summary(value) is None


def test_worker_queue_follows_the_hostname_contract() -> None:
    assert stats.worker_queue("cpu@core.3f9c2a7d41be") == "cpu"
    assert stats.worker_queue("gpu-test@host2.a1") == "gpu"
    assert stats.worker_queue("3f9c2a7d41be") is None


def test_worker_host_reads_the_machine_from_the_node_name() -> None:
    assert stats.worker_host("cpu@core.3f9c2a7d41be") == ("3f9c2a7d41be", "core")
    assert stats.worker_host("gpu-test@gpubox.a1") == ("a1", "gpubox")
    assert stats.worker_host("cpu@3f9c2a7d41be") is None and stats.worker_host(None) is None
    assert stats.hosts_by_container(["cpu@core.a", "cpu@host2.b", "odd"]) == {"a": "core", "b": "host2"}


def test_host_load_sums_the_workers_of_each_machine() -> None:
    tasks = [{"hostname": h, "runner_duration": d, "state": s, "queue": "cpu"}
             for h, d, s in (("a", 10.0, "success"), ("b", 5.0, "success"), ("b", 1.0, "failed"), ("c", 2.0, "success"))]
    workers = stats.worker_load(tasks, {"a": "core", "b": "host2", "c": "host2"})
    assert stats.host_load(workers) == {
        "core": {"workers": 1, "tasks": 1, "busy_s": 10.0, "failed": 0},
        "host2": {"workers": 2, "tasks": 3, "busy_s": 8.0, "failed": 1},
    }
    assert stats.worker_load(tasks)["a"]["host"] == "(unknown)"


def test_runner_tasks_skip_the_empty_branch(records: list[dict]) -> None:
    tis = stats.runner_tis(records[2], "run_runner_")
    assert [(t["task_id"], t["map_index"]) for t in tis] == [("run_runner_cpu", 0), ("run_runner_cpu", 1)]
    # Without a prefix the operator name finds the same tasks.
    assert stats.runner_tis(records[2]) == tis


def test_latencies_from_server_timestamps(summary: dict) -> None:
    lat = summary["latency_s"]
    assert lat["trigger_to_run_start"]["p50"] == pytest.approx(1.0)
    assert lat["queue_wait"]["n"] == 7
    assert lat["queue_wait"]["p50"] == pytest.approx(25.0)
    assert lat["queue_wait"]["p95"] == pytest.approx(35.3)
    assert lat["queue_wait"]["max"] == pytest.approx(35.6)
    assert lat["runner_duration"]["max"] == pytest.approx(32.0)
    assert lat["end_to_end"]["max"] == pytest.approx(72.6)
    # Run 2 waits for a free worker: its first runner starts 39.6 s after the trigger.
    assert lat["trigger_to_runner_start"]["max"] == pytest.approx(39.6)


def test_throughput_over_the_server_window(summary: dict) -> None:
    tp = summary["throughput"]
    assert tp["window_s"] == pytest.approx(111.0)  # first queued_at -> last end_date
    assert tp["runs_per_min"] == pytest.approx(5 / 111 * 60)
    assert tp["cells_total"] == 1150
    assert tp["cells_per_s"] == pytest.approx(1150 / 111)
    assert summary["runs"] == {"requested": 6, "triggered": 6, "states": {"failed": 1, "success": 5},
                               "succeeded": 5, "failed": 1}


def test_spread_over_workers_and_queues(summary: dict) -> None:
    workers = summary["workers"]
    assert {w: (v["tasks"], v["busy_s"], v["failed"]) for w, v in workers.items()} == {
        "3f9c2a7d41be": (3, pytest.approx(90.0), 0), "b81e06c5d2f4": (4, pytest.approx(95.0), 1)}
    assert summary["queues"]["cpu"]["tasks"] == 7
    assert set(summary["queues"]) == {"cpu"}  # the skipped gpu branch is no load


def test_failures_carry_the_exception_as_reason(summary: dict) -> None:
    reasons = {f["task"]: f["reason"] for f in summary["failures"]}
    assert reasons["run_runner_cpu[0]"].startswith("AirflowFailException: helical-runner rejected")
    assert "no outputs for ['broken']" in reasons["summarize[-1]"]


def test_failed_dataset_in_a_successful_task_is_a_failure(records: list[dict]) -> None:
    rec = copy.deepcopy(records[0])
    rec["runner_summaries"]["run_runner_cpu[0]"] = json.dumps({"run_id": "r", "ok": False, "datasets": [
        {"dataset": "pbmc", "status": "failed", "error": "no gene symbols", "cells": None}]})
    assert stats.failures(rec)[0]["reason"] == "pbmc: no gene symbols"


def test_trigger_errors_and_timeouts_are_counted(records: list[dict]) -> None:
    timed_out = copy.deepcopy(records[1]) | {"timed_out": True}
    never = {"run_id": "loadtest__x__0009", "trigger_error": "POST dagRuns answered 409"}
    s = stats.summarize([records[0], timed_out, never], "run_runner_")
    assert s["runs"]["states"] == {"not_triggered": 1, "success": 1, "timed_out": 1}
    assert s["runs"]["failed"] == 2
    assert {f["state"] for f in s["failures"]} == {"timed_out", "trigger_error"}


def test_in_flight_series_counts_active_and_running(records: list[dict]) -> None:
    series = stats.in_flight_series(records)
    assert series[0] == (0.0, 1, 0)
    assert max(a for _, a, _ in series) == 3
    assert series[-1][1:] == (0, 0)


def test_failure_reason_prefers_the_raised_exception() -> None:
    log = "[info] start\nValueError: bad h5ad\n[error] Task failed\n[info] Marking task as FAILED"
    assert stats.failure_reason(log) == "ValueError: bad h5ad"
    assert stats.failure_reason("[info] a\n[error] it failed\n[info] b") == "[error] it failed"
    assert stats.failure_reason(None) is None


def test_executing_series_shows_worker_slots_in_use(records: list[dict]) -> None:
    series = stats.executing_series(records, "run_runner_")
    assert series[0] == (6.0, 1)
    assert max(n for _, n in series) == 2  # two workers, one slot each in the recording
    assert series[-1] == (109.5, 0)


def test_the_load_test_reads_every_summary_the_runner_may_write():
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "runner" / "schemas" / "summary.schema.json").read_text())
    for example in schema["examples"]:
        jsonschema.validate(example, schema)
        # The XCom holds the dict RunnerOperator parsed; older tasks pushed the raw lines.
        assert stats.parse_runner_summary(example) == example
        assert stats.parse_runner_summary(["a log line", json.dumps(example)]) == example
