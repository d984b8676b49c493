"""Airflow's concurrency limits, derived from the cluster's runner slots (docs/scale-out.md has the arithmetic).

Airflow 3.3.2's defaults cap the stack far below its hardware: `core.parallelism` 32 tasks per scheduler,
`max_active_tasks` 16 per DAG run, `scheduler.max_tis_per_query` 16 a loop, whatever RUNNER_SLOTS says. Here
every limit follows two numbers, the CPU and GPU runner slots of the whole cluster, so raising RUNNER_SLOTS
(or adding GPUs) is the one change a bigger cluster needs.

Pure logic, no Airflow import: the DAG file reads it for max_active_tasks, init.sh for the pool size
(`python -m helical_workflow.capacity`), and launch.py, every Airflow service's entrypoint, puts the limits
into the environment of the Airflow process it then becomes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from helical_workflow.names import GPU_QUEUE

# discover_datasets, choose_queue and summarize: what a run needs besides its runners.
NON_RUNNER_TASKS_PER_RUN = 3
# Runs of the workflow at once (the DAG's max_active_runs); more wait queued.
MAX_ACTIVE_RUNS = 16
# Airflow's own defaults: never derive a smaller limit than a stock install has.
AIRFLOW_PARALLELISM, AIRFLOW_MAX_TIS_PER_QUERY = 32, 16
# Past this, one scheduling query's batch only grows the query, not the throughput.
MAX_TIS_PER_QUERY_CEILING = 512


class CapacityError(ValueError):
    """A slot setting is not a usable number."""


@dataclass(frozen=True)
class Capacity:
    """The runner slots of the whole cluster (core and worker hosts): CPU runner containers at once (the pool
    helical_cpu_runners) and GPU runner containers at once (one per GPU of every GPU host, by default)."""

    cpu_slots: int
    gpu_slots: int

    @property
    def runner_slots(self) -> int:
        return self.cpu_slots + self.gpu_slots

    @property
    def max_active_tasks_per_run(self) -> int:
        """One run may fill every runner slot of the cluster, plus its own bookkeeping tasks."""
        return self.runner_slots + NON_RUNNER_TASKS_PER_RUN

    @property
    def parallelism(self) -> int:
        """Every runner slot busy while every active run also runs its bookkeeping tasks."""
        return max(AIRFLOW_PARALLELISM, self.runner_slots + NON_RUNNER_TASKS_PER_RUN * MAX_ACTIVE_RUNS)

    @property
    def max_tis_per_query(self) -> int:
        """Enough task instances a scheduling loop to fill the cluster in one pass (Airflow: <= parallelism)."""
        return max(AIRFLOW_MAX_TIS_PER_QUERY, min(self.parallelism, MAX_TIS_PER_QUERY_CEILING))

    def scheduler_environment(self) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.max_active_tasks_per_run),
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": str(self.max_tis_per_query),
        }


def slots(env: Mapping[str, str], key: str, default: int) -> int:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise CapacityError(f"{key}={raw!r} is not a whole number of runner slots: fix it in .env")
    return int(raw)


def gpu_devices(env: Mapping[str, str]) -> list[str]:
    """This host's GPU ids (HELICAL_GPU_DEVICES: `nvidia-smi` indexes or GPU-UUIDs, comma-separated)."""
    return [device.strip() for device in (env.get("HELICAL_GPU_DEVICES") or "").split(",") if device.strip()]


def runners_per_gpu(env: Mapping[str, str]) -> int:
    per = slots(env, "HELICAL_RUNNERS_PER_GPU", 1)
    if per < 1:
        raise CapacityError("HELICAL_RUNNERS_PER_GPU (RUNNERS_PER_GPU in .env) must be at least 1")
    return per


def host_gpu_slots(env: Mapping[str, str]) -> int:
    """GPU runner containers this host runs at once: each of its GPUs times RUNNERS_PER_GPU."""
    return len(gpu_devices(env)) * runners_per_gpu(env)


def from_environment(env: Mapping[str, str]) -> Capacity:
    """HELICAL_RUNNER_SLOTS (empty: this host's CPUs) and HELICAL_GPU_RUNNER_SLOTS (empty: this host's GPU slots),
    as compose passes RUNNER_SLOTS and GPU_RUNNER_SLOTS from .env."""
    return Capacity(cpu_slots=slots(env, "HELICAL_RUNNER_SLOTS", os.cpu_count() or 1),
                    gpu_slots=slots(env, "HELICAL_GPU_RUNNER_SLOTS", host_gpu_slots(env)))


def worker_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A Celery worker on a host with GPUs (HELICAL_GPU_DEVICES) takes as many tasks at once as the host has GPU
    slots, each task holding one; a worker of the gpu queue with no GPU refuses to start (the test-only worker,
    queue gpu-test, runs without one)."""
    count = host_gpu_slots(env)
    if count:
        return {"AIRFLOW__CELERY__WORKER_CONCURRENCY": str(count)}
    if env.get("CELERY_QUEUE") == GPU_QUEUE:
        raise CapacityError("this GPU worker has no GPU: HELICAL_GPU_DEVICES is empty (make up GPU=1 and make "
                            "worker-host QUEUE=gpu fill it from `nvidia-smi -L`; or set GPU_DEVICES in .env)")
    return {}


if __name__ == "__main__":  # `python -m helical_workflow.capacity`: the CPU runner pool's size, for init.sh
    try:
        print(from_environment(os.environ).cpu_slots)
    except CapacityError as err:
        raise SystemExit(f"capacity: {err}") from err
