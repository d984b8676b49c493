"""No ceiling below the hardware (issue 21), on the real stack with the no-op runner (runner/bench/noop): more
runner tasks at once than Airflow's stock limits allow, and runs over 1,100 and 10,000 datasets.

The stack is switched to the no-op image with 48 runner slots, 16 task slots per worker and at most 64 runner
tasks a run (so the packing path runs at both sizes within minutes; the default, 512, is measured by
`make bench-scale`). It is not switched back: this module runs last in `make test`, before `make down`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import E2E, ROOT, compose, docker

NOOP_IMAGE = "helical-runner:noop"
SCALE = {"RUNNER_CPU_IMAGE": NOOP_IMAGE, "RUNNER_SLOTS": "48", "WORKER_CONCURRENCY": "16",
         "MAX_RUNNER_TASKS": "64", "MAX_DATASETS_PER_RUN": "10000"}
CONCURRENT = 40  # past core.parallelism 32, Airflow's default


def make_datasets(folder: Path, count: int, content: bytes = b"") -> None:
    """Files the no-op runner never parses: only their names (and a wait they may ask for) matter."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"d{i:05}.h5ad").write_bytes(content)


@pytest.fixture(scope="module")
def noop_stack(stack):
    subprocess.run(["docker", "build", "-q", "--build-arg", "NOOP_SECONDS=0", "-t", NOOP_IMAGE,
                    str(ROOT / "runner" / "bench" / "noop")], check=True, capture_output=True)
    compose("up", "-d", "--wait", "--wait-timeout", "600", env={**SCALE, "WORKERS": "3"})
    pool = compose("exec", "-T", "airflow-scheduler", "airflow", "pools", "get", "helical_cpu_runners", "-o", "json",
                   env=SCALE)
    assert int(json.loads(pool)[0]["slots"]) == 48, pool  # airflow-init ran again with the new RUNNER_SLOTS
    return stack


def scheduler_limits() -> dict[str, str]:
    """The environment of the running scheduler process: the launcher (tini's child, exec'd into Airflow) derives
    the limits there, so a new `exec` shell does not see them."""
    environ = compose("exec", "-T", "airflow-scheduler", "sh", "-c",
                      "tr '\\0' '\\n' < /proc/$(cut -d' ' -f1 /proc/1/task/1/children)/environ", env=SCALE)
    return dict(line.split("=", 1) for line in environ.splitlines() if line.startswith("AIRFLOW__") and "=" in line)


def test_more_runner_tasks_than_airflows_defaults_run_at_once(noop_stack):
    limits = scheduler_limits()
    assert int(limits["AIRFLOW__CORE__PARALLELISM"]) > 32 and int(limits["AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY"]) > 16
    make_datasets(E2E / "data" / "scale" / "hold", CONCURRENT, json.dumps({"noop_seconds": 150}).encode())
    run_id = noop_stack.trigger("concurrent", device="cpu", data="scale/hold", classifier="off")
    most, deadline = (0, 0), time.monotonic() + 420
    while time.monotonic() < deadline and min(most) < CONCURRENT:
        running_tis = sum(ti["state"] == "running" for ti in noop_stack.task_instances(run_id)
                          if ti["task_id"] == "run_runner_cpu")
        containers = len(docker("ps", "-q", "--filter", f"label=helical.run_id={run_id}").split())
        most = max(most, (running_tis, containers), key=min)
        time.sleep(2)
    print(f"\n{CONCURRENT} runner tasks: at most {most[0]} running in Airflow while {most[1]} runner containers ran "
          f"(parallelism {limits['AIRFLOW__CORE__PARALLELISM']})")
    assert min(most) >= CONCURRENT, most
    assert noop_stack.wait(run_id) == "success", noop_stack.explain(run_id)


@pytest.mark.parametrize("count", [1_100, 10_000])
def test_a_run_over_thousands_of_datasets_packs_them_and_succeeds(noop_stack, count):
    make_datasets(E2E / "data" / "scale" / f"n{count}", count)
    started = time.monotonic()
    run_id = noop_stack.trigger(f"datasets_{count}", device="cpu", data=f"scale/n{count}", classifier="off")
    assert noop_stack.wait(run_id, timeout=1500) == "success", noop_stack.explain(run_id)
    run_dir = noop_stack.results / run_id
    summary = json.loads((run_dir / "summary.json").read_text())
    runners = [ti for ti in noop_stack.task_instances(run_id) if ti["task_id"] == "run_runner_cpu"]
    print(f"\n{count} datasets: {len(runners)} runner tasks, {summary['packing']['datasets_per_task']} datasets "
          f"a container, success in {time.monotonic() - started:.0f}s")
    per_task = -(-count // 64)  # the fewest datasets a container that keeps the run within 64 runner tasks
    tasks = -(-count // per_task)  # 1,100 datasets: 18 a container, so 62 tasks (the last holds 2)
    assert summary["packing"] == {"datasets": count, "runner_tasks": tasks, "datasets_per_task_asked": 1,
                                  "datasets_per_task": per_task, "automatic": True, "max_runner_tasks": 64}
    assert summary["datasets_done"] == count and summary["missing"] == [] and len(runners) == tasks
    published = [p for p in run_dir.iterdir() if p.is_dir()]
    assert len(published) == count and all((p / "metrics.json").is_file() for p in published)


def test_a_run_past_the_dataset_ceiling_fails_at_once_naming_the_setting(noop_stack):
    # scale/ now holds 11,100 + 40 datasets; the ceiling is 10,000 here (MAX_DATASETS_PER_RUN).
    run_id = noop_stack.trigger("ceiling", device="cpu", data="scale")
    assert noop_stack.wait(run_id, timeout=300) == "failed"
    (discover,) = [ti for ti in noop_stack.task_instances(run_id) if ti["task_id"] == "discover_datasets"]
    assert discover["state"] == "failed" and discover["try_number"] == 1, discover  # a planning error: no retry
    assert "MAX_DATASETS_PER_RUN" in (noop_stack.api.log_tail(discover, 40) or "")
