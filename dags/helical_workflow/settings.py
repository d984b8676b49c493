"""Deployment settings of the workflow, read from the environment the compose file sets (one source: .env)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from helical_workflow.capacity import gpu_devices, runners_per_gpu
from helical_workflow.contract import CPU_QUEUE, GPU_QUEUE, RUNNER_IMAGES
from helical_workflow.names import CPU_RUNNER_POOL

# The Airflow pool CPU runner tasks take a slot of: sized to the host's CPUs by compose/airflow/init.sh.
RUNNER_POOL = CPU_RUNNER_POOL
# How the test-only GPU worker announces itself: it consumes `gpu` and runs the CPU image.
GPU_WORKER_MODE_ENV = "HELICAL_GPU_WORKER_MODE"
# Runner tasks a run maps at most (MAX_RUNNER_TASKS; compose sets Airflow's max_map_length to the same), and
# datasets a run takes at most (MAX_DATASETS_PER_RUN): docs/scale-out.md.
DEFAULT_MAX_RUNNER_TASKS = 512
DEFAULT_MAX_DATASETS_PER_RUN = 100_000
# How a runner task starts its runner (RUNNER_LAUNCH_MODE): a container on the Docker engine (compose), or a
# Kubernetes pod (the Helm deployment, docs/kubernetes.md). One contract either way: runner_launch.py.
LAUNCH_MODES = ("docker", "kubernetes")


@dataclass(frozen=True)
class Settings:
    """Where the host keeps data, results and models, and which runner images to launch."""

    host_data_dir: str
    host_results_dir: str
    host_models_dir: str
    cpu_image: str
    gpu_image: str
    runner_uid: str
    docker_network: str
    statsd_host: str
    # Bounds of each runner container: CPUs (a quota, which torch's thread count follows) and memory.
    runner_cpus: float
    runner_memory: str
    # The same folders as the workers see them (compose mounts them into every Airflow container).
    worker_data_dir: Path
    worker_results_dir: Path
    max_runner_tasks: int
    max_datasets_per_run: int
    # This host's GPUs and how many runners share one (a GPU worker holds one slot per GPU task).
    gpu_devices: tuple[str, ...]
    runners_per_gpu: int
    # Where the GPU workers of one host keep a lock file per GPU slot (a volume they share).
    gpu_lock_dir: Path
    launch_mode: str

    @property
    def runner_user(self) -> str:
        """The runners' uid:gid: the uid, and the same number as group. The uid alone would run them in group 0
        when the image has no passwd entry for it; docker-policy accepts exactly this form."""
        return f"{self.runner_uid}:{self.runner_uid}"


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    return Settings(
        host_data_dir=env.get("HELICAL_DATA_DIR", "/data"),
        host_results_dir=env.get("HELICAL_RESULTS_DIR", "/results"),
        host_models_dir=env.get("HELICAL_MODELS_DIR", "/models"),
        cpu_image=env.get("HELICAL_RUNNER_CPU_IMAGE", RUNNER_IMAGES[CPU_QUEUE]),
        gpu_image=env.get("HELICAL_RUNNER_GPU_IMAGE", RUNNER_IMAGES[GPU_QUEUE]),
        runner_uid=env.get("HELICAL_RUNNER_UID", "1000"),
        docker_network=env.get("HELICAL_DOCKER_NETWORK", "bridge"),
        statsd_host=env.get("HELICAL_STATSD_HOST", ""),
        runner_cpus=float(env.get("HELICAL_RUNNER_CPUS") or 1),
        runner_memory=env.get("HELICAL_RUNNER_MEMORY") or "4g",
        worker_data_dir=Path(env.get("HELICAL_WORKER_DATA_DIR", "/opt/airflow/data")),
        worker_results_dir=Path(env.get("HELICAL_WORKER_RESULTS_DIR", "/opt/airflow/results")),
        max_runner_tasks=int(env.get("HELICAL_MAX_RUNNER_TASKS") or DEFAULT_MAX_RUNNER_TASKS),
        max_datasets_per_run=int(env.get("HELICAL_MAX_DATASETS_PER_RUN") or DEFAULT_MAX_DATASETS_PER_RUN),
        gpu_devices=tuple(gpu_devices(env)),
        runners_per_gpu=runners_per_gpu(env),
        gpu_lock_dir=Path(env.get("HELICAL_GPU_LOCK_DIR", "/opt/airflow/gpu-slots")),
        launch_mode=launch_mode(env.get("HELICAL_RUNNER_LAUNCH_MODE") or LAUNCH_MODES[0]),
    )


def launch_mode(value: str) -> str:
    if value not in LAUNCH_MODES:
        raise ValueError(f"HELICAL_RUNNER_LAUNCH_MODE={value!r}: set RUNNER_LAUNCH_MODE in .env (or the env of "
                         f"kubernetes/values.yaml) to one of {', '.join(LAUNCH_MODES)}")
    return value
