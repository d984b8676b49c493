"""Trigger -> first runner container on an idle stack (make bench-first-runner): runs triggered one at a time.

For each run: when each task was queued, started and ended, counted from the run's `queued_at`, and when
Docker started its first runner container (`docker events`, label helical.dag_id). Prints one table per run
and the median, p95 and max of trigger -> runner task start and trigger -> runner container start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
import uuid
from datetime import datetime

from helical_workflow.names import DAG_ID, RUNNER_LABEL, RUNNER_LABELS
from loadtest.client import AirflowApi

DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def watch_container_starts() -> subprocess.Popen:
    """`docker events` for runner starts from now on (the daemon keeps only its last 256 events for --since)."""
    return subprocess.Popen(["docker", "events", "--filter", "event=start", "--filter", f"label={RUNNER_LABEL}",
                             "--format", "{{json .}}"], stdout=subprocess.PIPE, text=True)


def first_starts(watch: subprocess.Popen) -> dict[str, float]:
    """{run_id label: its first runner container's start} from what the watch saw."""
    watch.terminate()
    out, _ = watch.communicate(timeout=10)
    starts: dict[str, float] = {}
    for line in out.splitlines():
        event = json.loads(line)
        run_id = event["Actor"]["Attributes"].get(RUNNER_LABELS["run_id"], "")
        starts[run_id] = min(starts.get(run_id, float("inf")), event["timeNano"] / 1e9)
    return starts


def one_run(api: AirflowApi, conf: dict[str, object]) -> tuple[dict, list[dict]]:
    run_id = f"bench_first_runner__{uuid.uuid4().hex[:8]}"
    api.trigger(DAG_ID, run_id, conf)
    while True:
        time.sleep(1)
        tis = api.task_instances(DAG_ID, run_id)
        if tis and all(ti["state"] in DONE for ti in tis) and any(ti["task_id"] == "summarize" for ti in tis):
            return api.list_runs(DAG_ID, run_id)[0], tis


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-cells", type=int, default=50)
    parser.add_argument("--data", default="", help="the runs' `data` param (default: every .h5ad, or the demo)")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('AIRFLOW_PORT', '8080')}")
    args = parser.parse_args()
    api = AirflowApi(args.url, os.environ["_AIRFLOW_WWW_USER_USERNAME"], os.environ["_AIRFLOW_WWW_USER_PASSWORD"])
    api.unpause(DAG_ID)
    to_task, to_container = [], []
    print(f"# trigger -> first runner, idle stack, {args.runs} runs one at a time, device={args.device}, "
          f"data={args.data!r}, max_cells={args.max_cells}; machine: {os.cpu_count()} CPUs, {platform.platform()}")
    for _ in range(args.runs):
        watch = watch_container_starts()
        run, tis = one_run(api, {"device": args.device, "max_cells": args.max_cells, "data": args.data})
        queued = epoch(run["queued_at"])
        started = first_starts(watch).get(run["dag_run_id"])
        print(f"\n{run['dag_run_id']} {run['state']}")
        print("| task | state | queued s | start s | end s |\n| --- | --- | --- | --- | --- |")
        for ti in sorted(tis, key=lambda ti: epoch(ti["start_date"]) or float("inf")):
            offsets = [f"{epoch(ti[k]) - queued:.2f}" if ti.get(k) else "-" for k in ("queued_when", "start_date",
                                                                                   "end_date")]
            print(f"| {ti['task_id']}[{ti['map_index']}] | {ti['state']} | {' | '.join(offsets)} |")
        runners = [epoch(ti["start_date"]) for ti in tis
                   if ti["task_id"].startswith("run_runner") and ti["state"] != "skipped" and ti["start_date"]]
        if runners:
            to_task.append(min(runners) - queued)
        if started:
            to_container.append(started - queued)
            print(f"first runner container started at {started - queued:.2f} s")
    print("\n| trigger -> | p50 s | p95 s | max s | runs |\n| --- | --- | --- | --- | --- |")
    for name, values in (("runner task start", to_task), ("runner container start", to_container)):
        if values:
            print(f"| {name} | {statistics.median(values):.2f} | {percentile(values, 0.95):.2f} | {max(values):.2f} | "
                  f"{len(values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
