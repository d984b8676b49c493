"""What a runner task starts and how it judges the end, whichever engine starts it (RUNNER_LAUNCH_MODE).

RunnerOperator (operator.py: a container on the Docker engine) and RunnerPodOperator (pod_operator.py: a
Kubernetes pod) take the image, CLI, environment and labels from plan_launch, turn a failed exit into
runner_failure's exception (bad input fails at once, anything else is retried), stream the runner's log into the
task log and return its JSON summary (runner_summary): one contract, two engines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from helical_workflow.contract import (
    CPU_QUEUE,
    GPU_QUEUE,
    RUNNER_DEVICES,
    RUNNER_INPUT_ERRORS,
    RunParams,
    runner_command,
)
from helical_workflow.discovery import PlannedDataset, safe_run_id
from helical_workflow.names import EXIT_KILLED, EXIT_TERMINATED, EXIT_UNEXPECTED, RUNNER_LABELS, STATSD_PORT
from helical_workflow.settings import GPU_WORKER_MODE_ENV, load_settings

# The runner writes only to /results and /tmp (its image points every cache there): /tmp is a tmpfs (Docker) or
# a size-limited emptyDir (Kubernetes) of this size, in Docker's notation.
RUNNER_TMP_SIZE = "2g"
# How long a runner gets to stop on SIGTERM (an earlier try's container stopped, a pod deleted) before SIGKILL.
RUNNER_STOP_SECONDS = 10
CRASHES = {EXIT_UNEXPECTED: "the runner failed unexpectedly (its log above says why)",
           EXIT_KILLED: "the runner was killed (SIGKILL)",
           EXIT_TERMINATED: "the runner was stopped (SIGTERM: its container stopped, its pod deleted or evicted, or its worker "
                "shutting down)"}


@dataclass(frozen=True)
class RunnerLaunch:
    """One runner of one task instance's try: what either engine starts."""

    image: str
    command: list[str]
    environment: dict[str, str]
    labels: dict[str, str]
    # "device": the runner gets a GPU; "test": the test-only GPU worker (CPU image, no device); "none": CPU queue.
    gpu_mode: str

    @property
    def gets_gpu(self) -> bool:
        return self.gpu_mode == "device"


def pack_name(datasets: list[PlannedDataset]) -> str:
    """How logs, labels and errors name a pack: its paths."""
    return ",".join(str(planned["dataset"]) for planned in datasets)


def worker_gpu_mode(gpu: bool) -> str:
    """A GPU task runs with a device unless the worker executing it is the test-only GPU worker."""
    return os.environ.get(GPU_WORKER_MODE_ENV, "device") if gpu else "none"


def plan_launch(context: Any, *, datasets: list[PlannedDataset], gpu: bool, queue: str) -> RunnerLaunch:
    """The runner this try starts: image and device from the queue and the worker, the CLI from the run's params."""
    settings = load_settings()
    ti = context["ti"]
    run_id = safe_run_id(context["run_id"])
    gpu_mode = worker_gpu_mode(gpu)
    device_queue = GPU_QUEUE if gpu_mode == "device" else CPU_QUEUE
    environment = {"STATSD_HOST": settings.statsd_host, "STATSD_PORT": str(STATSD_PORT)} if settings.statsd_host else {}
    return RunnerLaunch(
        image=settings.gpu_image if gpu_mode == "device" else settings.cpu_image,
        command=runner_command(datasets, run_id, RunParams.of(context["params"]), device=RUNNER_DEVICES[device_queue]),
        environment=environment,
        labels={
            RUNNER_LABELS["dag_id"]: ti.dag_id,
            RUNNER_LABELS["task_id"]: ti.task_id,
            RUNNER_LABELS["run_id"]: run_id,
            RUNNER_LABELS["queue"]: queue,
            RUNNER_LABELS["dataset"]: pack_name(datasets),
            RUNNER_LABELS["map_index"]: str(ti.map_index),
            RUNNER_LABELS["gpu_mode"]: gpu_mode,
        },
        gpu_mode=gpu_mode,
    )


def runner_failure(code: int | None, dataset: str, *, oom_killed: bool, memory_limit: str) -> AirflowException:
    """What a failed runner's exit becomes: exits 1 and 2 (bad input or configuration) fail the task at once,
    retrying cannot help; any other is retried while tries remain, with why it happened and the fix."""
    if code in RUNNER_INPUT_ERRORS:
        return AirflowFailException(f"helical-runner rejected {dataset} (exit {code}): its log above names the fix")
    if oom_killed:
        reason = (f"the runner ran out of memory (limit {memory_limit}): raise RUNNER_MEMORY (.env, or "
                  "HELICAL_RUNNER_MEMORY in kubernetes/base/settings.env), or lower the run's max_cells or batch_size")
    elif code is None:
        reason = "the runner ended without an exit status (it never started, or its pod was evicted or its node lost)"
    else:
        reason = CRASHES.get(code, f"the runner exited {code}")
    return AirflowException(f"{dataset}: {reason} (retried while tries remain)")


def runner_operator_class(launch_mode: str) -> type:
    """The operator of RUNNER_LAUNCH_MODE; only its provider is imported (the other may not be installed)."""
    if launch_mode == "kubernetes":
        from helical_workflow.pod_operator import RunnerPodOperator

        return RunnerPodOperator
    from helical_workflow.operator import RunnerOperator

    return RunnerOperator
