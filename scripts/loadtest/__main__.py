#!/usr/bin/env python3
"""Load-test `helical_model_workflow` through Airflow's REST API and write a report.

    python -m loadtest --runs 20 --concurrency 5 --device cpu --max-cells 200
    python -m loadtest --runs 12 --compare-workers 1,3      # runs `make scale WORKERS=n`
    python -m loadtest --from-records results/loadtest/<ts>/records.json   # re-render only

Reports land in results/loadtest/<ts>/ (report.json, report.md, latency.png, in_flight.png,
per_worker.png, records.json); the last stdout line is the path of report.json (comparison.json in
--compare-workers mode), so scripts can pick it up with `tail -n1`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadtest import LoadConfig, ScaleConfig, compare_workers, rebuild_report, run_load
from loadtest.client import ApiError
from loadtest.config import CLASSIFIER_MODES, DEVICES

DEFAULTS = LoadConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI of LoadConfig: its defaults (and the environment variables they read) are LoadConfig's own."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    load = p.add_argument_group("load")
    load.add_argument("--runs", type=int, default=DEFAULTS.runs, help="DAG runs to trigger (default %(default)s)")
    load.add_argument("--concurrency", type=int, help="max runs of ours in flight (default: no cap)")
    load.add_argument("--rate", type=float, help="trigger pace in runs/minute (default: all at once)")
    load.add_argument("--timeout", type=float, default=DEFAULTS.timeout_s,
                      help="seconds for the whole load (default %(default)s)")
    load.add_argument("--poll", type=float, default=DEFAULTS.poll_s, help="seconds between state polls (default %(default)s)")
    params = p.add_argument_group("DAG params (left out of conf when unset, so DAG defaults apply)")
    params.add_argument("--data", action="append", default=[],
                        help="dataset path/glob as the DAG sees it; repeat to round-robin several")
    params.add_argument("--device", choices=DEVICES)
    params.add_argument("--max-cells", type=int)
    params.add_argument("--classifier", choices=CLASSIFIER_MODES)
    params.add_argument("--datasets-per-task", type=int, help="datasets per runner container (packing)")
    params.add_argument("--batch-size", type=int)
    api = p.add_argument_group("deployment")
    api.add_argument("--url", default=DEFAULTS.url,
                     help="Airflow API server (env AIRFLOW_URL; default http://localhost:8080)")
    api.add_argument("--username", default=DEFAULTS.username,
                     help="env _AIRFLOW_WWW_USER_USERNAME; default admin")
    api.add_argument("--password", default=DEFAULTS.password,
                     help="env _AIRFLOW_WWW_USER_PASSWORD; default admin")
    api.add_argument("--token", default=DEFAULTS.token,
                     help="ready JWT instead of username/password (env AIRFLOW_API_TOKEN)")
    api.add_argument("--flower-url", default=DEFAULTS.flower_url,
                     help="Flower, for each worker's host (and, with --compare-workers, to wait for the count; "
                          "env FLOWER_URL)")
    api.add_argument("--flower-user", default=DEFAULTS.flower_user, help="env FLOWER_USER")
    api.add_argument("--flower-password", default=DEFAULTS.flower_password, help="env FLOWER_PASSWORD")
    api.add_argument("--dag-id", default=DEFAULTS.dag_id)
    api.add_argument("--runner-task", default=DEFAULTS.runner_task,
                     help="task id (prefix) of the runner tasks (default %(default)s; '' = detect)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=DEFAULTS.out_root,
                     help="report root; a <ts>/ dir is made inside (default results/loadtest)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars (CI logs)")
    out.add_argument("--keep-unfinished", action="store_true",
                     help="at --timeout leave our unfinished runs running instead of marking them failed")
    out.add_argument("--from-records", type=Path, help="only re-render a report from a records.json")
    scale = p.add_argument_group("worker scaling")
    scale.add_argument("--compare-workers", help="comma list of worker counts, e.g. 1,3")
    scale.add_argument("--scale-cmd", default="make scale WORKERS={n}",
                       help="command run before each count; {n} = workers (default: %(default)s)")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> LoadConfig:
    return LoadConfig(
        runs=args.runs, concurrency=args.concurrency, rate=args.rate, data=tuple(args.data),
        device=args.device, max_cells=args.max_cells, classifier=args.classifier,
        datasets_per_task=args.datasets_per_task, batch_size=args.batch_size, timeout_s=args.timeout,
        poll_s=args.poll, url=args.url.rstrip("/"),
        username=args.username, password=args.password, token=args.token, dag_id=args.dag_id,
        flower_url=args.flower_url, flower_user=args.flower_user, flower_password=args.flower_password,
        runner_task=args.runner_task or None, out_root=args.out, progress=not args.no_progress,
        fail_unfinished=not args.keep_unfinished,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.from_records:
            print(rebuild_report(args.from_records) / "report.json")
            return 0
        config = config_from(args)
        config.validate()
        if args.compare_workers:
            counts = [int(n) for n in args.compare_workers.split(",") if n.strip()]
            scale = ScaleConfig(args.scale_cmd, args.flower_url, args.flower_user, args.flower_password)
            base = compare_workers(config, counts, scale)
            print((base / "comparison.md").read_text())
            print(base / "comparison.json")
            return 0
        out_dir = run_load(config)
        print((out_dir / "report.md").read_text())
        print(out_dir / "report.json")
        return 0
    except (ApiError, ValueError, RuntimeError) as err:
        print(f"load test failed: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
