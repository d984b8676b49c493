#!/usr/bin/env python3
"""Trigger one helical_model_workflow run through the REST API and wait for it (make trigger).

Settings come from the environment, which the Makefile fills from .env: AIRFLOW_URL (default
http://localhost:$AIRFLOW_PORT), _AIRFLOW_WWW_USER_USERNAME, _AIRFLOW_WWW_USER_PASSWORD, HELICAL_RESULTS_DIR.
A failed run prints why: each dataset's error from summary.json, else the failed tasks' last log lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from helical_workflow.discovery import run_folder  # Airflow-free: the folder a run writes to
from loadtest.client import TERMINAL_RUN_STATES, AirflowApi, ApiError


def main() -> int:
    port = os.environ.get("AIRFLOW_PORT") or "8080"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AIRFLOW_URL", f"http://localhost:{port}"))
    parser.add_argument("--dag", default="helical_model_workflow")
    parser.add_argument("--conf", default="{}", help='run params as JSON, e.g. {"device": "cpu", "max_cells": 500}')
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run to finish")
    args = parser.parse_args()

    try:
        api = AirflowApi(args.url, os.environ.get("_AIRFLOW_WWW_USER_USERNAME") or "admin",
                         os.environ.get("_AIRFLOW_WWW_USER_PASSWORD") or "admin")
        run_id = "make__" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        api.trigger(args.dag, run_id, json.loads(args.conf))
        print(f"triggered {args.dag} run {run_id}; waiting (Ctrl-C stops waiting, not the run)", flush=True)
        deadline, state = time.monotonic() + args.timeout, "queued"
        while state not in TERMINAL_RUN_STATES and time.monotonic() < deadline:
            time.sleep(5)
            new_state = api.list_runs(args.dag, run_id)[0]["state"]
            if new_state != state:
                print(f"  {run_id}: {new_state}", flush=True)
            state = new_state
    except ApiError as err:
        sys.exit(str(err))
    results = run_folder(Path(os.environ.get("HELICAL_RESULTS_DIR") or "results"), run_id)
    print(f"{run_id}: {state}; outputs in {results}/")
    if state != "success":
        print(why_failed(api, args.dag, run_id, results / "summary.json"))
    return 0 if state == "success" else 1


def why_failed(api: AirflowApi, dag_id: str, run_id: str, summary_path: Path) -> str:
    """The runners' own errors (summary.json), or the last log lines of each failed task."""
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        lines = [f"  {summary['error']}"] if summary.get("error") else []
        lines += [f"  {path} [{e['exit_class']}]: {e['error']}" for path, e in summary.get("errors", {}).items()]
        if lines:
            return "\n".join(["why:", *lines])
    failed = [ti for ti in api.task_instances(dag_id, run_id) if ti["state"] == "failed"]
    return "\n".join(["why (failed tasks, last log lines):",
                      *(f"  {ti['task_id']}[{ti['map_index']}]: {(api.log_tail(ti, 3) or '').strip()}" for ti in failed)])


if __name__ == "__main__":
    sys.exit(main())
