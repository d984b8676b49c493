"""Pure functions from recorded runs (REST JSON of dag runs, task instances, runner summaries) to numbers.

A record is one triggered run: {"run_id", "triggered_at", "trigger_error", "timed_out", "dag_run",
"task_instances", "runner_summaries": {"task[map]": summary}, "failure_logs": {"task[map]": text}}.
All latencies use server timestamps only, so the client's clock never skews them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from helical_workflow.contract import runner_summary

Record = dict[str, Any]
FAILED_TI_STATES = frozenset({"failed", "upstream_failed"})
LATENCY_KEYS = (
    "trigger_to_run_start",
    "trigger_to_runner_start",
    "queue_wait",
    "runner_duration",
    "end_to_end",
)


def parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def seconds(start: str | None, end: str | None) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    return (b - a).total_seconds() if a and b else None


def ti_key(ti: dict[str, Any]) -> str:
    return f"{ti['task_id']}[{ti.get('map_index', -1)}]"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), without numpy."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def describe(values: Iterable[float | None]) -> dict[str, float | int | None]:
    vals = [v for v in values if v is not None]
    return {
        "n": len(vals),
        "p50": percentile(vals, 50),
        "p95": percentile(vals, 95),
        "max": max(vals) if vals else None,
        "mean": sum(vals) / len(vals) if vals else None,
    }


def worker_queue(hostname: str | None) -> str | None:
    """Queue a Celery worker serves, from its node name (contracts.md: before '@', up to '-')."""
    if not hostname or "@" not in hostname:
        return None
    return hostname.split("@", 1)[0].split("-", 1)[0]


def worker_host(node: str | None) -> tuple[str, str] | None:
    """(container hostname, host name) of a Celery node name `<queue>@<host>.<container>` (contracts.md):
    a task instance records the container hostname only, the node name says which machine that is."""
    if not node or "@" not in node or "." not in node.split("@", 1)[1]:
        return None
    host, container = node.split("@", 1)[1].split(".", 1)
    return container, host


def hosts_by_container(nodes: Iterable[str]) -> dict[str, str]:
    return dict(pair for pair in map(worker_host, nodes) if pair)


def parse_runner_summary(value: Any) -> dict[str, Any] | None:
    """The runner's summary line, whatever form the XCom came back in: the summary itself (what the workflow's
    runner tasks push), or log lines (a DockerOperator with xcom_all), read by the workflow's own parser."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.splitlines()
    if isinstance(value, list):
        return runner_summary([str(line) for line in value])
    return value if isinstance(value, dict) and "datasets" in value else None


def runner_tis(record: Record, runner_task: str | None = None) -> list[dict[str, Any]]:
    """A run's runner task instances: ids starting with `runner_task`, else Docker/Runner operators,
    else mapped tasks. Skipped ones go: the unused queue's branch expands to one empty skipped TI."""
    tis = [ti for ti in record.get("task_instances") or [] if ti.get("state") != "skipped"]
    if runner_task:
        return [ti for ti in tis if ti["task_id"].startswith(runner_task)]
    named = [ti for ti in tis if re.search("Docker|Runner", str(ti.get("operator")))]
    return named or [ti for ti in tis if ti.get("map_index", -1) >= 0]


def failure_reason(log_tail: str | None) -> str | None:
    """The most telling line of a failed try's log: the last `SomeError: ...` line, else the last
    line saying error/failed, else the last line (Airflow ends with generic "marking failed" lines)."""
    lines = [ln.strip() for ln in (log_tail or "").splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.search(r"\w(Error|Exception)\b:", ln)]
    errors = [ln for ln in lines if re.search("error|failed", ln, re.IGNORECASE)]
    return (raised or errors or lines or [None])[-1]


def run_metrics(record: Record, runner_task: str | None = None) -> dict[str, Any]:
    run = record.get("dag_run") or {}
    queued_at = run.get("queued_at")
    runners = runner_tis(record, runner_task)
    starts = [ti["start_date"] for ti in runners if ti.get("start_date")]
    cells = [
        d.get("cells") or 0
        for s in (record.get("runner_summaries") or {}).values()
        if (p := parse_runner_summary(s))
        for d in p["datasets"]
    ]
    return {
        "run_id": record["run_id"],
        "state": "timed_out" if record.get("timed_out") else run.get("state", "not_triggered"),
        "conf": run.get("conf"),
        "queued_at": queued_at,
        "start_date": run.get("start_date"),
        "end_date": run.get("end_date"),
        "trigger_to_run_start": seconds(queued_at, run.get("start_date")),
        "trigger_to_runner_start": seconds(queued_at, min(starts)) if starts else None,
        "end_to_end": seconds(queued_at, run.get("end_date")),
        "runner_tasks": len(runners),
        "cells": sum(cells) if cells else None,
    }


def task_metrics(record: Record, runner_task: str | None = None) -> list[dict[str, Any]]:
    summaries = record.get("runner_summaries") or {}
    out = []
    for ti in runner_tis(record, runner_task):
        summary = parse_runner_summary(summaries.get(ti_key(ti)))
        datasets = summary["datasets"] if summary else []
        cells = sum(d.get("cells") or 0 for d in datasets) if summary else None
        duration = ti.get("duration")
        if duration is None:
            duration = seconds(ti.get("start_date"), ti.get("end_date"))
        rates = [d["cells_per_second"] for d in datasets if d.get("cells_per_second")]
        out.append({
            "run_id": record["run_id"],
            "task_id": ti["task_id"],
            "map_index": ti.get("map_index", -1),
            "state": ti.get("state"),
            "try_number": ti.get("try_number"),
            "queue": ti.get("queue"),
            "hostname": ti.get("hostname") or None,
            "queued_when": ti.get("queued_when"),
            "start_date": ti.get("start_date"),
            "end_date": ti.get("end_date"),
            "schedule_delay": seconds(ti.get("scheduled_when"), ti.get("queued_when")),
            "queue_wait": seconds(ti.get("queued_when"), ti.get("start_date")),
            "runner_duration": duration,
            "cells": cells,
            "cells_per_second": sum(rates) / len(rates) if rates else None,
        })
    return out


def failures(record: Record) -> list[dict[str, Any]]:
    """Everything that went wrong in one run, each with the best reason we have."""
    if record.get("trigger_error"):
        return [{"run_id": record["run_id"], "task": None, "state": "trigger_error",
                 "reason": record["trigger_error"]}]
    out = []
    if record.get("timed_out"):
        out.append({"run_id": record["run_id"], "task": None, "state": "timed_out",
                    "reason": "unfinished when the load test stopped (--timeout or Ctrl-C)"})
    summaries, logs = record.get("runner_summaries") or {}, record.get("failure_logs") or {}
    for ti in record.get("task_instances") or []:
        summary = parse_runner_summary(summaries.get(ti_key(ti)))
        bad = [d for d in (summary or {}).get("datasets", []) if d.get("status") != "ok"]
        if ti.get("state") not in FAILED_TI_STATES and not bad:
            continue
        reasons = [f"{d.get('dataset')}: {d.get('error')}" for d in bad]
        if ti.get("state") == "upstream_failed":
            reasons.append("an upstream task failed")
        elif not reasons and (why := failure_reason(logs.get(ti_key(ti)))):
            reasons.append(why)
        out.append({"run_id": record["run_id"], "task": ti_key(ti), "state": ti.get("state"),
                    "try_number": ti.get("try_number"),
                    "reason": "; ".join(reasons) or "no reason recorded (see the task log)"})
    if not out and (record.get("dag_run") or {}).get("state") == "failed":
        out.append({"run_id": record["run_id"], "task": None, "state": "failed",
                    "reason": "run failed with no failed task (timeout or marked failed)"})
    return out


def in_flight_series(records: Sequence[Record]) -> list[tuple[float, int, int]]:
    """(seconds since first trigger, runs queued-or-running, runs running) at every state change."""
    events: list[tuple[dt.datetime, int, int]] = []
    for r in records:
        run = r.get("dag_run") or {}
        q, s, e = (parse_ts(run.get(k)) for k in ("queued_at", "start_date", "end_date"))
        if not q:
            continue
        events.append((q, 1, 0))
        if s:
            events.append((s, 0, 1))
        if e:
            events.append((e, -1, -1 if s else 0))
    if not events:
        return []
    events.sort(key=lambda ev: ev[0])
    t0, active, running, series = events[0][0], 0, 0, []
    for t, d_active, d_running in events:
        active, running = active + d_active, running + d_running
        series.append(((t - t0).total_seconds(), active, running))
    return series


def executing_series(records: Sequence[Record], runner_task: str | None = None
                     ) -> list[tuple[float, int]]:
    """(seconds since first trigger, runner tasks executing): a run is "running" long before a
    worker picks its runner up, so this, not the run state, shows whether the workers are the limit."""
    t0 = min((parse_ts((r.get("dag_run") or {}).get("queued_at")) for r in records
              if (r.get("dag_run") or {}).get("queued_at")), default=None)
    events = sorted(
        (parse_ts(ti[k]), d)
        for r in records for ti in runner_tis(r, runner_task)
        for k, d in (("start_date", 1), ("end_date", -1)) if ti.get("start_date") and ti.get(k)
    )
    if t0 is None or not events:
        return []
    series, busy = [], 0
    for t, d in events:
        busy += d
        series.append(((t - t0).total_seconds(), busy))
    return series


def worker_load(tasks: Sequence[dict[str, Any]], hosts: Mapping[str, str] | None = None
                ) -> dict[str, dict[str, Any]]:
    """Runner tasks and busy seconds per worker. A TI's `hostname` is the worker container's host
    name (not the Celery node name `cpu@...`), so the queue comes from the TIs themselves, and the
    machine from `hosts` ({container hostname: host}, Flower's node names)."""
    load: dict[str, dict[str, Any]] = {}
    for t in tasks:
        w = load.setdefault(t["hostname"] or "(never ran)",
                            {"host": (hosts or {}).get(t["hostname"] or "", "(unknown)"),
                             "tasks": 0, "busy_s": 0.0, "failed": 0, "queues": []})
        w["tasks"] += 1
        w["busy_s"] += t["runner_duration"] or 0.0
        w["failed"] += t["state"] in FAILED_TI_STATES
        if t["queue"] not in w["queues"]:
            w["queues"].append(t["queue"])
    return dict(sorted(load.items()))


def host_load(workers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-worker numbers summed per machine (`worker_load`'s `host`)."""
    load: dict[str, dict[str, Any]] = {}
    for w in workers.values():
        h = load.setdefault(w["host"], {"workers": 0, "tasks": 0, "busy_s": 0.0, "failed": 0})
        h["workers"] += 1
        for key in ("tasks", "busy_s", "failed"):
            h[key] += w[key]
    return dict(sorted(load.items()))


def queue_load(tasks: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_queue: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        by_queue[t["queue"] or "(none)"].append(t)
    return {
        q: {"tasks": len(ts), "queue_wait": describe(t["queue_wait"] for t in ts),
            "workers": dict(Counter(t["hostname"] or "(never ran)" for t in ts))}
        for q, ts in sorted(by_queue.items())
    }


def summarize(records: Sequence[Record], runner_task: str | None = None,
              hosts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole report's numbers; JSON-ready. `hosts`: {container hostname: host}, when Flower told."""
    runs = [run_metrics(r, runner_task) for r in records]
    tasks = [t for r in records for t in task_metrics(r, runner_task)]
    states = Counter(r["state"] for r in runs)
    starts = [parse_ts(r["queued_at"]) for r in runs if r["queued_at"]]
    ends = [parse_ts(r["end_date"]) for r in runs if r["end_date"]]
    # Window: first run queued (triggered) to last run finished, as the server saw them.
    window = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    done = states.get("success", 0)
    cells = [t["cells"] for t in tasks if t["cells"] is not None]
    latency = {k: describe(r[k] for r in runs) for k in ("trigger_to_run_start",
               "trigger_to_runner_start", "end_to_end")}
    latency.update({k: describe(t[k] for t in tasks) for k in ("schedule_delay", "queue_wait",
                    "runner_duration")})
    return {
        "runs": {"requested": len(records), "triggered": sum(bool(r.get("dag_run")) for r in records),
                 "states": dict(sorted(states.items())), "succeeded": done,
                 "failed": len(records) - done},
        "latency_s": latency,
        "throughput": {
            "window_s": window,
            "runs_per_min": done / window * 60 if window else None,
            "runner_tasks_per_min": sum(t["state"] == "success" for t in tasks) / window * 60
            if window else None,
            "cells_total": sum(cells) if cells else None,
            "cells_per_s": sum(cells) / window if cells and window else None,
            "runner_cells_per_s": describe(t["cells_per_second"] for t in tasks),
        },
        "workers": (workers := worker_load(tasks, hosts)),
        "hosts": host_load(workers),
        "queues": queue_load(tasks),
        "failures": [f for r in records for f in failures(r)],
        "in_flight": {"max_active": max((a for _, a, _ in in_flight_series(records)), default=0),
                      "max_running": max((s for _, _, s in in_flight_series(records)), default=0)},
        "per_run": runs,
        "per_task": tasks,
    }
