"""End to end through the REST API: routing, outputs on the host, spread over workers, backlog metrics.

The tests share one stack; none relies on another having run: each sets or reads the worker count it needs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from helical_workflow.names import CPU_QUEUE, GPU_QUEUE
from tests.harness import E2E, compose, make
from tests.monitoring.live_checks import by_label, value, wait_for

DATASETS = ("pbmc_part_a", "pbmc_part_b", "synthetic_counts")


def runner_tis(stack, run_id: str, task_id: str) -> list[dict]:
    return [ti for ti in stack.task_instances(run_id) if ti["task_id"] == task_id]


def assert_complete_outputs(run_dir: Path, dataset: str) -> dict:
    folder = run_dir / dataset
    assert (folder / "embeddings.h5ad").stat().st_size > 0, f"{folder} has no embeddings"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["cells"] > 0 and metrics["model"]["test_model"] is True, metrics
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return metrics


def test_three_datasets_run_on_several_workers(stack):
    run_id = stack.trigger("three", device="cpu", max_cells=100)
    assert stack.wait(run_id) == "success", stack.explain(run_id)
    run_dir = stack.results / run_id
    for dataset in DATASETS:
        assert_complete_outputs(run_dir, dataset)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["datasets_done"] == 3 and summary["missing"] == []
    runners = runner_tis(stack, run_id, "run_runner_cpu")
    assert len(runners) == 3 and all(ti["state"] == "success" for ti in runners)
    workers = {ti["hostname"] for ti in runners}
    assert len(workers) >= 2, f"all mapped runner tasks ran on {workers}"
    ran = [ti for ti in stack.task_instances(run_id) if ti["state"] != "skipped"]
    assert {ti["queue"] for ti in ran} == {CPU_QUEUE}, ran


def test_a_pack_of_datasets_keeps_each_output_and_error_its_own(stack):
    """Two files of one name in different folders and a truncated one, packed into one runner container."""
    twins = E2E / "data" / "twins"
    for lab in ("a", "b"):
        (twins / lab).mkdir(parents=True, exist_ok=True)
        shutil.copy(E2E / "data" / "synthetic_counts.h5ad", twins / lab / "x.h5ad")
    (twins / "c").mkdir(exist_ok=True)
    (twins / "c" / "bad.h5ad").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    try:
        run_id = stack.trigger("twins", device="cpu", data="twins", max_cells=40, datasets_per_task=3)
        assert stack.wait(run_id) == "failed", stack.explain(run_id)
    finally:
        shutil.rmtree(twins)
    (runner,) = runner_tis(stack, run_id, "run_runner_cpu")  # one container for the three
    assert runner["state"] == "failed" and runner["try_number"] == 1, runner  # bad input: no retry
    run_dir = stack.results / run_id
    published = {name: assert_complete_outputs(run_dir, name) for name in ("twins__a__x", "twins__b__x")}
    assert {name: m["source"] for name, m in published.items()} == {
        "twins__a__x": "/data/twins/a/x.h5ad", "twins__b__x": "/data/twins/b/x.h5ad"}
    assert {m["datasets_in_container"] for m in published.values()} == {3}
    assert published["twins__a__x"]["startup"] == published["twins__b__x"]["startup"]  # the one container's
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(d["dataset"] for d in summary["datasets"]) == ["twins__a__x", "twins__b__x"], summary
    assert summary["missing"] == ["/data/twins/c/bad.h5ad"], summary
    assert "twins/c/bad.h5ad" in summary["errors"]["/data/twins/c/bad.h5ad"]["error"], summary


def test_auto_without_gpu_worker_runs_on_cpu(stack):
    run_id = stack.trigger("auto", device="auto", data="pbmc_part_a.h5ad", max_cells=50)
    assert stack.wait(run_id) == "success", stack.explain(run_id)
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances(run_id)}
    assert states["run_runner_cpu"] == "success" and states["run_runner_gpu"] == "skipped", states
    assert_complete_outputs(stack.results / run_id, "pbmc_part_a")


def test_gpu_without_gpu_worker_fails_fast_with_the_fix(stack):
    started = time.monotonic()
    run_id = stack.trigger("gpu_none", device="gpu", data="pbmc_part_a.h5ad")
    assert stack.wait(run_id, timeout=300) == "failed"
    assert time.monotonic() - started < 120, "device=gpu without a GPU worker should fail fast, not queue"
    choose = runner_tis(stack, run_id, "choose_queue")[0]
    assert choose["state"] == "failed" and choose["try_number"] == 1, "no retries for a routing error"
    assert f"no live Celery worker consumes the {GPU_QUEUE!r} queue" in (stack.api.log_tail(choose, 60) or "")
    assert not (stack.results / run_id / "pbmc_part_a").exists()


def test_backlog_shows_in_redis_queue_depth_and_drains(stack):
    make("scale", WORKERS="0")
    run_id = stack.trigger("backlog", device="cpu", data="pbmc_part_b.h5ad", max_cells=50)
    depth = f'queue:redis_queue_depth:sum{{queue="{CPU_QUEUE}"}}'
    wait_for(stack.prometheus, depth, lambda r: value(r) >= 1, 180)
    # The scheduler's view of the same backlog (a gauge sent every ti_metrics_interval, 30 s).
    wait_for(stack.prometheus, f'sum(airflow_task_instances{{state="queued", queue="{CPU_QUEUE}"}})',
             lambda r: value(r) >= 1, 180)
    make("scale", WORKERS="2")
    assert stack.wait(run_id) == "success", stack.explain(run_id)
    wait_for(stack.prometheus, depth, lambda r: bool(r) and value(r) == 0, 180)


def test_flower_metrics_list_every_worker(stack):
    running = len(compose("ps", "-q", "airflow-worker").split())  # whatever an earlier test scaled to
    workers = requests.get(f"{stack.flower}/api/workers", params={"refresh": "true"}, auth=stack.flower_auth,
                           timeout=30).json()
    assert len([w for w in workers if w.startswith(f"{CPU_QUEUE}@")]) == running, workers
    wait_for(stack.prometheus, "flower_worker_online == 1",
             lambda r: set(workers) <= set(by_label(r, "worker")), 180)
    wait_for(stack.prometheus, "queue:flower_workers_online:sum",
             lambda r: by_label(r, "queue").get(CPU_QUEUE) == running, 180)


def test_gpu_route_runs_on_the_test_gpu_worker(stack):
    compose("--profile", "gpu-test", "up", "-d", "--no-deps", "--wait", "airflow-worker-gpu-test")
    try:
        run_id = stack.trigger("gpu_test", device="gpu", data="synthetic_counts.h5ad", max_cells=60)
        assert stack.wait(run_id) == "success", stack.explain(run_id)
        (runner,) = runner_tis(stack, run_id, "run_runner_gpu")
        container = compose("--profile", "gpu-test", "ps", "-q", "airflow-worker-gpu-test").strip()
        gpu_worker_host = subprocess.run(["docker", "inspect", "-f", "{{.Config.Hostname}}", container],
                                         capture_output=True, text=True, check=True).stdout.strip()
        assert runner["queue"] == GPU_QUEUE and runner["hostname"] == gpu_worker_host, runner
        log = stack.api.log_tail(runner, 400) or ""
        assert "gpu mode test" in log, log[-2000:]
        assert_complete_outputs(stack.results / run_id, "synthetic_counts")
    finally:
        compose("--profile", "gpu-test", "rm", "-sf", "airflow-worker-gpu-test")


def test_small_load_report_agrees_with_the_api(stack, tmp_path):
    from loadtest import LoadConfig, run_load

    folder = run_load(LoadConfig(runs=6, device="cpu", max_cells=30, data=("pbmc_part_a.h5ad",), url=stack.url,
                                 concurrency=6, timeout_s=900, progress=False, out_root=tmp_path,
                                 flower_url=stack.flower, flower_user=stack.flower_auth[0],
                                 flower_password=stack.flower_auth[1]))
    report_json = folder / "report.json"
    for name in ("report.json", "report.md", "latency.png", "in_flight.png", "per_worker.png"):
        assert (folder / name).stat().st_size > 0, name
    report = json.loads(report_json.read_text())
    per_run = {r["run_id"]: r for r in report["summary"]["per_run"]}
    assert len(per_run) == 6
    # Flower's node names put every worker of this one-machine stack on the core.
    assert set(report["summary"]["hosts"]) == {"core"}, report["summary"]["workers"]
    prefix = next(iter(per_run)).rsplit("__", 1)[0]
    api_runs = {r["dag_run_id"]: r for r in stack.api.list_runs("helical_model_workflow", prefix)}
    assert set(api_runs) == set(per_run)
    for run_id, run in per_run.items():
        assert run["state"] == api_runs[run_id]["state"] == "success", run
