"""How the cost of a run grows with its datasets (make bench-scale): runs of 10, 100, 1,000 and 10,000 datasets,
one at a time, on a running stack whose workers run the no-op runner (runner/bench/noop, 0 s a dataset), packed
as the defaults choose (MAX_RUNNER_TASKS).

Per run: wall time (trigger -> run end), trigger -> first runner container (`docker events`), orchestration
overhead per dataset (wall / datasets: the no-op runner does no work), the scheduler's CPU seconds (its
container's cgroup), the metadata database's size, and the REST calls the UI's run page makes, timed after the
run. Writes report.json, report.md and scale.png to --out.
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
from pathlib import Path

import matplotlib
import requests

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from helical_tools.bench_first_runner import epoch, first_starts, watch_container_starts
from helical_workflow.names import DAG_ID
from loadtest.client import AirflowApi, fetch_token

ROOT = Path(__file__).resolve().parents[2]


def compose_exec(service: str, *command: str) -> str:
    return subprocess.run(["docker", "compose", "-f", "compose.yaml", "exec", "-T", service, *command], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def scheduler_cpu_seconds() -> float:
    """CPU time the scheduler's container has used (cgroup v2 cpu.stat, else v1 cpuacct)."""
    stat = compose_exec("airflow-scheduler", "sh", "-c", "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || "
                        "echo usage_usec $(( $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage) / 1000 ))")
    fields = dict(line.split() for line in stat.splitlines() if line.strip())
    return int(fields["usage_usec"]) / 1e6


def database_bytes() -> int:
    return int(compose_exec("postgres", "psql", "-U", "airflow", "-tAc", "SELECT pg_database_size('airflow')"))


def make_datasets(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"d{i:05}.h5ad").touch()


def ui_run_page_seconds(url: str, token: str, run_id: str) -> dict[str, float]:
    """The median of three of each REST call Airflow 3.3's UI makes to open a run's page."""
    calls = {
        "dag run": f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}",
        "grid structure": f"/ui/grid/structure/{DAG_ID}",
        "grid runs": f"/ui/grid/runs/{DAG_ID}?limit=10",
        "grid task summaries": f"/ui/grid/ti_summaries/{DAG_ID}?run_ids={run_id}",
        "task instances (first page)": f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=50",
    }
    timed = {}
    for name, path in calls.items():
        seconds = []
        for _ in range(3):
            started = time.monotonic()
            response = requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=300)
            response.raise_for_status()
            seconds.append(time.monotonic() - started)
        timed[name] = round(statistics.median(seconds), 3)
    return timed


def one_run(api: AirflowApi, url: str, token: str, data_dir: Path, count: int) -> dict[str, object]:
    make_datasets(data_dir / "bench-scale" / f"n{count}", count)
    run_id = f"bench_scale__{count}__{uuid.uuid4().hex[:6]}"
    cpu, db = scheduler_cpu_seconds(), database_bytes()
    watch = watch_container_starts()
    api.trigger(DAG_ID, run_id, {"device": "cpu", "data": f"bench-scale/n{count}", "classifier": "off"})
    while (run := api.list_runs(DAG_ID, run_id)[0])["state"] not in ("success", "failed"):
        time.sleep(2)
    first = first_starts(watch).get(run_id)
    wall = epoch(run["end_date"]) - epoch(run["queued_at"])
    runners = [ti for ti in api.task_instances(DAG_ID, run_id) if ti["task_id"] == "run_runner_cpu"]
    return {"datasets": count, "state": run["state"], "runner_tasks": len(runners), "wall_s": round(wall, 1),
            "trigger_to_first_runner_s": round(first - epoch(run["queued_at"]), 2) if first else None,
            "overhead_per_dataset_s": round(wall / count, 4),
            "scheduler_cpu_s": round(scheduler_cpu_seconds() - cpu, 1),
            "metadata_db_mib": round(database_bytes() / 2**20, 1), "metadata_db_growth_mib": round(
                (database_bytes() - db) / 2**20, 2), "ui_run_page_s": ui_run_page_seconds(url, token, run_id)}


def write_report(rows: list[dict], machine: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"machine": machine, "runs": rows}, indent=2) + "\n")
    base = next((r for r in rows if r["datasets"] == 100), rows[0])
    lines = [f"# Cost of a run by its datasets (no-op runner, packed as the defaults choose)\n\nMachine: {machine}\n",
             "| datasets | runner tasks | wall s | trigger -> first runner s | overhead / dataset s | vs 100 | "
             "scheduler CPU s | metadata DB MiB | slowest UI call s |", "|" + " --- |" * 9]
    for r in rows:
        ratio = r["overhead_per_dataset_s"] / base["overhead_per_dataset_s"]
        lines.append(f"| {r['datasets']:,} | {r['runner_tasks']} | {r['wall_s']} | {r['trigger_to_first_runner_s']} | "
                     f"{r['overhead_per_dataset_s']} | {ratio:.2f}x | {r['scheduler_cpu_s']} | {r['metadata_db_mib']} | "
                     f"{max(r['ui_run_page_s'].values())} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    counts = [r["datasets"] for r in rows]
    left.loglog(counts, [r["wall_s"] for r in rows], "o-", label="wall s")
    left.loglog(counts, [r["scheduler_cpu_s"] for r in rows], "s-", label="scheduler CPU s")
    left.set(xlabel="datasets in the run", title="Run cost")
    left.legend()
    right.semilogx(counts, [r["overhead_per_dataset_s"] for r in rows], "o-")
    right.set(xlabel="datasets in the run", ylabel="s", title="Orchestration overhead per dataset")
    figure.tight_layout()
    figure.savefig(out / "scale.png", dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", default="10,100,1000,10000")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('AIRFLOW_PORT', '8080')}")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("HELICAL_DATA_DIR") or ROOT / "data"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "scale")
    args = parser.parse_args()
    user, password = os.environ["_AIRFLOW_WWW_USER_USERNAME"], os.environ["_AIRFLOW_WWW_USER_PASSWORD"]
    api = AirflowApi(args.url, user, password)
    api.unpause(DAG_ID)
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout
    machine = f"{cpu.strip() or platform.processor()}, {os.cpu_count()} CPUs, {platform.platform()}"
    rows = []
    for count in (int(c) for c in args.counts.split(",")):
        rows.append(one_run(api, args.url, fetch_token(args.url, user, password), args.data_dir, count))
        print(json.dumps(rows[-1]), flush=True)
    write_report(rows, machine, args.out)
    print((args.out / "report.md").read_text())
    return 0 if all(r["state"] == "success" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
