"""Runs one load: trigger our runs at the asked pace, wait with a progress bar, read everything back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import stats
from .client import TERMINAL_RUN_STATES, AirflowApi, ApiError
from .config import DAG_ID, LoadConfig, run_id_for, run_id_prefix, timestamp
from .flower import worker_status
from .report import write_report


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class _Pacer:
    """Says when the next trigger may go: after 60/rate s, and while fewer than `concurrency` fly."""

    def __init__(self, config: LoadConfig, start: float) -> None:
        self.interval = 60.0 / config.rate if config.rate else 0.0
        self.concurrency = config.concurrency
        self.next_at = start

    def ready(self, now: float, in_flight: int) -> bool:
        if self.concurrency is not None and in_flight >= self.concurrency:
            return False
        return now >= self.next_at

    def fired(self, now: float) -> None:
        self.next_at = max(self.next_at + self.interval, now) if self.interval else now


def _trigger_and_wait(api: AirflowApi, config: LoadConfig, stamp: str, notes: list[str]) -> list[dict]:
    records = [{"run_id": run_id_for(stamp, i), "index": i} for i in range(config.runs)]
    pending = list(records)
    states: dict[str, str] = {}
    start = time.monotonic()
    deadline, pacer, last_poll = start + config.timeout_s, _Pacer(config, start), 0.0
    bar = tqdm(total=config.runs, unit="run", desc="runs finished", disable=not config.progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        while True:
            now = time.monotonic()
            in_flight = sum(1 for r in records if "dag_run" in r and
                            states.get(r["run_id"]) not in TERMINAL_RUN_STATES)
            if pending and now < deadline and pacer.ready(now, in_flight):
                rec = pending.pop(0)
                rec["triggered_at"] = _now()
                try:
                    rec["dag_run"] = api.trigger(config.dag_id, rec["run_id"], config.conf_for(rec["index"]))
                    states[rec["run_id"]] = rec["dag_run"]["state"]
                except ApiError as err:
                    rec["trigger_error"] = str(err)
                    bar.update(1)
                pacer.fired(now)
                continue  # trigger back-to-back while allowed; polling waits for a pause
            if now - last_poll >= config.poll_s or not pending:
                last_poll = now
                try:
                    polled = api.list_runs(config.dag_id, run_id_prefix(stamp))
                except ApiError as err:  # one failed poll (API restart, 5xx) is no reason to stop
                    bar.write(f"poll failed, retrying: {err}")
                    polled = []
                for run in polled:
                    old = states.get(run["dag_run_id"])
                    states[run["dag_run_id"]] = run["state"]
                    if run["state"] in TERMINAL_RUN_STATES and old not in TERMINAL_RUN_STATES:
                        bar.update(1)
            triggered = [r for r in records if "dag_run" in r]
            unfinished = [r for r in triggered if states.get(r["run_id"]) not in TERMINAL_RUN_STATES]
            bar.set_postfix(triggered=len(triggered), in_flight=len(unfinished),
                            failed=sum(s == "failed" for s in states.values()), refresh=False)
            if not pending and not unfinished:
                break
            if now >= deadline:
                _give_up(api, config, unfinished, pending, notes, "--timeout reached")
                break
            # Sleep to the next poll, or to the next trigger slot when one is free (not to a busy loop).
            slot_free = pending and pacer.ready(pacer.next_at, len(unfinished))
            wake = min(last_poll + config.poll_s, pacer.next_at if slot_free else deadline, deadline)
            time.sleep(max(0.05, wake - time.monotonic()))
    except KeyboardInterrupt:  # Ctrl-C: stop like a timeout, so the report is still written
        unfinished = [r for r in records if "dag_run" in r
                      and states.get(r["run_id"]) not in TERMINAL_RUN_STATES]
        _give_up(api, config, unfinished, pending, notes, "interrupted (Ctrl-C)")
    finally:
        bar.close()
    return records


def _give_up(api: AirflowApi, config: LoadConfig, unfinished: list[dict], pending: list[dict],
             notes: list[str], why: str) -> None:
    """Stop early: flag unfinished runs, and fail them (ours only) so they stop loading the stack."""
    for rec in unfinished:
        rec["timed_out"] = True
        if config.fail_unfinished:
            try:
                api.fail_run(config.dag_id, rec["run_id"], f"load test stopped: {why}")
            except ApiError as err:
                notes.append(f"could not mark {rec['run_id']} failed: {err}")
    for rec in pending:
        rec["trigger_error"] = f"not triggered: {why}"
    notes.append(f"stopped early ({why}; --timeout {config.timeout_s:.0f}s): {len(unfinished)} unfinished"
                 f"{' (marked failed)' if config.fail_unfinished else ''}, {len(pending)} never triggered.")


def _read_back(api: AirflowApi, config: LoadConfig, records: list[dict], prefix: str) -> None:
    """Final run, task instances, runner XCom summaries and failure log tails of each of our runs."""
    runs = {r["dag_run_id"]: r for r in api.list_runs(config.dag_id, prefix)}
    logs_left = config.max_failure_logs
    for rec in tqdm(records, desc="reading back", unit="run", disable=not config.progress,
                    file=sys.stderr):
        if "dag_run" not in rec:
            continue
        rec["dag_run"] = runs.get(rec["run_id"], rec["dag_run"])
        rec["task_instances"] = api.task_instances(config.dag_id, rec["run_id"])
        rec["runner_summaries"], rec["failure_logs"] = {}, {}
        for ti in stats.runner_tis(rec, config.runner_task):
            if ti.get("state") in ("success", "failed"):
                value = api.return_value(config.dag_id, rec["run_id"], ti["task_id"], ti["map_index"])
                if value is not None:
                    rec["runner_summaries"][stats.ti_key(ti)] = value
        for ti in rec["task_instances"]:
            if ti.get("state") == "failed" and logs_left > 0:
                logs_left -= 1
                if tail := api.log_tail(ti):
                    rec["failure_logs"][stats.ti_key(ti)] = tail


def worker_hosts(config: LoadConfig, notes: list[str]) -> dict[str, str]:
    """{container hostname: host} from Flower's node names, or {} (and a note) without Flower."""
    if not config.flower_url:
        notes.append("workers' hosts unknown: no --flower-url (env FLOWER_URL).")
        return {}
    try:
        return stats.hosts_by_container(worker_status(config.flower_url, config.flower_user, config.flower_password))
    except (OSError, ValueError) as err:
        notes.append(f"workers' hosts unknown: Flower at {config.flower_url} did not answer ({err}).")
        return {}


def build_report(records: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    summary = stats.summarize(records, meta["config"].get("runner_task"), meta.get("worker_hosts"))
    if summary["per_task"] and summary["throughput"]["cells_total"] is None:
        meta.setdefault("notes", []).append(
            "cells/s absent: no runner XCom return_value could be read (do_xcom_push off, or the "
            "user may not read XComs).")
    return {"meta": meta, "summary": summary}


def run_load(config: LoadConfig) -> Path:
    """Run one load test against a live deployment; returns the report directory."""
    config.validate()
    stamp = timestamp()
    out_dir = config.out_dir or config.out_root / stamp
    api = AirflowApi(config.url, config.username, config.password, config.token)
    notes: list[str] = []
    dag = api.get_dag(config.dag_id)
    if dag.get("is_paused"):
        api.unpause(config.dag_id)
        notes.append(f"`{config.dag_id}` was paused; the load test unpaused it (it stays unpaused).")
    if others := api.count_active_runs(config.dag_id):
        notes.append(f"{others} runs not started by this test were already queued/running; "
                     "they compete for the same workers and skew the numbers.")
    if dag.get("max_active_runs"):
        notes.append(f"the DAG allows max_active_runs={dag['max_active_runs']}; more runs wait queued.")
    started = _now()
    records = _trigger_and_wait(api, config, stamp, notes)
    _read_back(api, config, records, run_id_prefix(stamp))
    meta = {
        "url": config.url, "dag_id": config.dag_id, "run_id_prefix": run_id_prefix(stamp),
        "started_at": started, "finished_at": _now(), "conf_example": config.conf_for(0),
        "config": {k: v for k, v in dataclasses.asdict(config).items()
                   if k not in ("password", "flower_password", "token", "out_root", "out_dir")},
        "worker_hosts": worker_hosts(config, notes),
        "notes": notes,
    }
    write_report(out_dir, build_report(records, meta), records)
    return out_dir


def rebuild_report(records_path: Path, out_dir: Path | None = None) -> Path:
    """Re-render a report from a saved records.json (no stack needed); returns the report dir."""
    records = json.loads(records_path.read_text())
    old = records_path.with_name("report.json")
    meta = json.loads(old.read_text())["meta"] if old.exists() else {
        "url": "(recorded)", "dag_id": DAG_ID,
        "run_id_prefix": records[0]["run_id"].rsplit("__", 1)[0] + "__" if records else "",
        "conf_example": (records[0].get("dag_run") or {}).get("conf") if records else {},
        "config": {"concurrency": None, "rate": None, "runner_task": "run_runner_"}, "notes": []}
    meta["notes"] = [n for n in meta.get("notes", []) if not n.startswith("cells/s absent")]
    out = out_dir or records_path.parent
    write_report(out, build_report(records, meta), records)
    return out
