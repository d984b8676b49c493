#!/usr/bin/env python3
"""`helical-runner run --data P [--name N]... --run-id R ...` that only sleeps: each dataset waits NOOP_SECONDS,
then its folder (metrics.json, "noop": true, 0 cells) is published the way the real runner publishes it, so
the workflow's summary succeeds and a load test measures Airflow, Celery and Docker alone. A dataset file that
holds JSON such as {"noop_seconds": 120} sets its own wait (the stack tests hold runners that way)."""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def noop_seconds(data: Path) -> float:
    try:
        return float(json.loads(data.read_bytes()[:256])["noop_seconds"])
    except (OSError, ValueError, KeyError, TypeError):  # a real .h5ad, a folder, or no wait of its own
        return float(os.environ.get("NOOP_SECONDS", "5"))


def publish(folder: Path, metrics: dict) -> None:
    """Stage the folder, then one rename; a try that loses the race to publish leaves nothing behind."""
    staging = folder.with_name(f".{folder.name}.noop.tmp")
    shutil.rmtree(staging, ignore_errors=True)  # left by a try that was killed mid-way
    staging.mkdir(parents=True)
    (staging / "metrics.json").write_text(json.dumps(metrics))
    try:
        staging.rename(folder)
    except OSError:  # published meanwhile by another try
        shutil.rmtree(staging)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--name", action="append", default=[])
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--output-dir", default=os.environ.get("OUTPUT_DIR", "/results"))
    args, _ = parser.parse_known_args()
    names = args.name or [Path(d).stem for d in args.data]
    results = []
    for data, name in zip(args.data, names, strict=True):
        folder = Path(args.output_dir) / args.run_id / name
        if not (folder / "metrics.json").is_file():  # like the runner: what an earlier try published is kept
            time.sleep(noop_seconds(Path(data)))
            publish(folder, {"run_id": args.run_id, "dataset": name, "source": data, "status": "ok", "noop": True,
                             "cells": 0, "durations_seconds": {"embed": 0.0}})
        results.append({"dataset": name, "status": "ok", "output_dir": str(folder), "error": None, "cells": 0,
                        "cells_per_second": None})
    print(json.dumps({"run_id": args.run_id, "ok": True, "datasets": results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
