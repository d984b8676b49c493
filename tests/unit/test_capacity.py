"""Airflow's concurrency limits follow the cluster's runner slots (docs/scale-out.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helical_workflow.capacity import (
    Capacity,
    CapacityError,
    from_environment,
    worker_environment,
)
from helical_workflow.names import CPU_QUEUE, GPU_QUEUE

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_host_keeps_airflows_defaults_as_the_floor():
    small = Capacity(cpu_slots=2, gpu_slots=0)
    assert small.parallelism == 32 + 18  # 2 runners + 3 bookkeeping tasks x 16 runs
    assert small.max_active_tasks_per_run == 5 and small.max_tis_per_query == 50


def test_limits_grow_past_airflows_with_the_slots():
    cluster = Capacity(cpu_slots=96, gpu_slots=8)
    assert cluster.max_active_tasks_per_run == 107  # one run can fill all 104 runner slots
    assert cluster.parallelism == 104 + 48 and cluster.max_tis_per_query == 152
    assert cluster.scheduler_environment() == {"AIRFLOW__CORE__PARALLELISM": "152",
                                               "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "107",
                                               "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "152"}
    assert Capacity(cpu_slots=5000, gpu_slots=0).max_tis_per_query == 512


def test_slots_come_from_the_settings_or_the_host():
    env = {"HELICAL_RUNNER_SLOTS": "40", "HELICAL_GPU_DEVICES": "0,1,GPU-9f3a", "HELICAL_RUNNERS_PER_GPU": "2"}
    assert from_environment(env) == Capacity(cpu_slots=40, gpu_slots=6)
    assert from_environment({**env, "HELICAL_GPU_RUNNER_SLOTS": "16"}).gpu_slots == 16  # a cluster's GPU hosts
    assert worker_environment(env) == {"AIRFLOW__CELERY__WORKER_CONCURRENCY": "6"}
    assert worker_environment({"CELERY_QUEUE": CPU_QUEUE}) == {} == worker_environment({"CELERY_QUEUE": f"{GPU_QUEUE}-test"})
    with pytest.raises(CapacityError, match=r"RUNNER_SLOTS.*not a whole number"):
        from_environment({"HELICAL_RUNNER_SLOTS": "many"})
    with pytest.raises(CapacityError, match="GPU_DEVICES"):
        worker_environment({"CELERY_QUEUE": GPU_QUEUE})


def test_the_launcher_hands_every_derived_setting_to_the_command_it_becomes():
    done = subprocess.run([sys.executable, "-m", "helical_workflow.launch", "env"], cwd=ROOT / "dags",
                          env={"HELICAL_RUNNER_SLOTS": "40", "HELICAL_TASK_EXECUTION_TIMEOUT": "3600",
                               "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    assert {"AIRFLOW__CORE__PARALLELISM=88", "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT=4200"} <= set(
        done.stdout.splitlines())
    assert "40 CPU + 0 GPU runner slots" in done.stderr


def test_the_launcher_refuses_what_cannot_work_naming_it():
    done = subprocess.run([sys.executable, "-m", "helical_workflow.launch", "env"], cwd=ROOT / "dags",
                          env={"CELERY_QUEUE": GPU_QUEUE, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode != 0 and "GPU_DEVICES" in done.stderr and not done.stdout


def test_the_scale_out_docs_table_is_what_the_module_derives():
    docs = (ROOT / "docs" / "scale-out.md").read_text()
    small, large = Capacity(cpu_slots=8, gpu_slots=0), Capacity(cpu_slots=96, gpu_slots=8)
    for limit, attribute in (("`max_active_tasks` of the DAG", "max_active_tasks_per_run"),
                             ("`core.parallelism`", "parallelism"), ("`scheduler.max_tis_per_query`", "max_tis_per_query")):
        (row,) = [line for line in docs.splitlines() if line.startswith(f"| {limit}")]
        assert row.endswith(f"| {getattr(small, attribute)} | {getattr(large, attribute)} |"), row
