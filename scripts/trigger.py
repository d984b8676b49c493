#!/usr/bin/env python3
"""Trigger one helical_model_workflow run through the REST API and wait for it (make trigger).

Standard library only, so it runs with any python3 on the host. Settings come from the environment, which
the Makefile fills from .env: AIRFLOW_URL (default http://localhost:$AIRFLOW_PORT), _AIRFLOW_WWW_USER_USERNAME,
_AIRFLOW_WWW_USER_PASSWORD.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

FINISHED = {"success", "failed"}


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        sys.exit(f"{method} {url} -> HTTP {err.code}: {err.read().decode(errors='replace')[:500]}")
    except urllib.error.URLError as err:
        sys.exit(f"cannot reach Airflow at {url} ({err.reason}): is the stack up? (make up)")


def main() -> int:
    port = os.environ.get("AIRFLOW_PORT", "8080")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AIRFLOW_URL", f"http://localhost:{port}"))
    parser.add_argument("--dag", default="helical_model_workflow")
    parser.add_argument("--conf", default="{}", help='run params as JSON, e.g. {"device": "cpu", "max_cells": 500}')
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run to finish")
    parser.add_argument("--no-wait", action="store_true", help="print the run id and return at once")
    args = parser.parse_args()

    token = call(f"{args.url}/auth/token", "POST", {
        "username": os.environ.get("_AIRFLOW_WWW_USER_USERNAME", "admin"),
        "password": os.environ.get("_AIRFLOW_WWW_USER_PASSWORD", "admin"),
    })["access_token"]
    run = call(f"{args.url}/api/v2/dags/{args.dag}/dagRuns", "POST",
               {"logical_date": None, "conf": json.loads(args.conf)}, token)
    run_id = run["dag_run_id"]
    print(f"triggered {args.dag} run {run_id}", flush=True)
    if args.no_wait:
        return 0
    deadline = time.monotonic() + args.timeout
    state = run["state"]
    while state not in FINISHED and time.monotonic() < deadline:
        time.sleep(3)
        state = call(f"{args.url}/api/v2/dags/{args.dag}/dagRuns/{run_id}", token=token)["state"]
        print(f"  {run_id}: {state}", flush=True)
    print(f"{run_id} finished: {state}; outputs in results/<run_id>/ (run id with ':' and '+' replaced by '_')")
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
