"""The DockerOperator that runs helical-runner on one pack of datasets, on the queue the run was routed to."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from docker.types import DeviceRequest, Mount

from helical_workflow.contract import (
    CPU_QUEUE,
    GPU_QUEUE,
    RUNNER_DATA_DIR,
    RUNNER_DEVICES,
    RUNNER_INPUT_ERRORS,
    RUNNER_LABEL,
    RUNNER_MODELS_DIR,
    RUNNER_RESULTS_DIR,
    runner_command,
)
from helical_workflow.discovery import PlannedDataset, safe_run_id
from helical_workflow.gpu_slots import DEVICE_LABEL, SLOT_LABEL, GpuSlot, hold_gpu_slot
from helical_workflow.settings import GPU_WORKER_MODE_ENV, load_settings

# The runner writes only to /results and /tmp (its image points every cache there).
RUNNER_LOCKDOWN = {"read_only": True, "tmpfs": {"/tmp": "size=2g"}, "cap_drop": ["ALL"],
                   "security_opt": ["no-new-privileges"], "pids_limit": 512}
# How long a runner left by an earlier try gets to stop on SIGTERM before it is killed.
ORPHAN_STOP_SECONDS = 10


class RunnerOperator(DockerOperator):
    """helical-runner on `datasets` (paths under /data, each with its output name, unique within the run, from
    discovery.plan_datasets; several when the run packs them), labelled for cAdvisor, logs streamed to the task log.

    `gpu=True` runs the GPU image on one GPU of the worker's host, by device id (gpu_slots.py), unless the worker
    executing the task is the test-only GPU worker (HELICAL_GPU_WORKER_MODE=test), which uses the CPU image, and
    a device id only when it is given fake ones (HELICAL_GPU_DEVICES).
    """

    def __init__(self, *, datasets: list[PlannedDataset], gpu: bool = False, **kwargs: Any) -> None:
        settings = load_settings()
        super().__init__(
            image=settings.gpu_image if gpu else settings.cpu_image,
            api_version="auto",
            # docker_url: the provider reads DOCKER_HOST, which compose points at docker-policy (docs/security.md).
            mounts=[
                Mount(target=str(RUNNER_DATA_DIR), source=settings.host_data_dir, type="bind", read_only=True),
                Mount(target=str(RUNNER_RESULTS_DIR), source=settings.host_results_dir, type="bind"),
                # Read-only: weights come from `make models`, never from a run.
                Mount(target=str(RUNNER_MODELS_DIR), source=settings.host_models_dir, type="bind", read_only=True),
            ],
            mount_tmp_dir=False,
            network_mode=settings.docker_network,
            user=settings.runner_user,
            mem_limit=settings.runner_memory,
            # The container's own log is a copy (the task log has every line): keep it small.
            log_opts_max_size="10m",
            log_opts_max_file="2",
            # "success" would remove failed containers too; they stay for `docker logs` (make down removes them).
            auto_remove="never",
            do_xcom_push=True,
            # Every line: stdout and stderr interleave in the container's log stream, so the runner's JSON
            # summary (its last stdout line) is not always the stream's last line.
            xcom_all=True,
            # A GPU runner's device (one id, chosen by hold_gpu_slot when it starts) is set in execute.
            **kwargs,
        )
        self.datasets = datasets
        # How logs, labels and errors name the pack: its paths.
        self.dataset = ",".join(str(planned["dataset"]) for planned in datasets)
        self.gpu = gpu
        self.statsd_host = settings.statsd_host
        self.cpu_image = settings.cpu_image
        self.runner_cpus = settings.runner_cpus
        self.gpu_devices, self.runners_per_gpu = settings.gpu_devices, settings.runners_per_gpu
        self.gpu_lock_dir = settings.gpu_lock_dir

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        run_id = safe_run_id(context["run_id"])
        gpu_mode = os.environ.get(GPU_WORKER_MODE_ENV, "device") if self.gpu else "none"
        if gpu_mode == "test":
            self.image = self.cpu_image
        device = RUNNER_DEVICES[GPU_QUEUE if gpu_mode == "device" else CPU_QUEUE]
        self.command = runner_command(self.datasets, run_id, context["params"], device=device)
        self.environment = {"STATSD_HOST": self.statsd_host, "STATSD_PORT": "9125"} if self.statsd_host else {}
        # Not templated fields, so they are set here, where the run's identity is known.
        self.container_name = container_name(ti.dag_id, ti.task_id, run_id, ti.map_index, ti.try_number)
        self.labels = {
            RUNNER_LABEL: ti.dag_id,
            "helical.task_id": ti.task_id,
            "helical.run_id": run_id,
            "helical.queue": self.queue,
            "helical.dataset": self.dataset,
            "helical.map_index": str(ti.map_index),
            "helical.gpu_mode": gpu_mode,
        }
        self.log.info("runner %s on %s (queue %s, gpu mode %s)", self.image, self.dataset, self.queue, gpu_mode)
        self.stop_earlier_tries()
        self.add_resource_limits()
        with self.gpu_slot(gpu_mode) as slot:
            if slot:
                self.device_requests = [DeviceRequest(device_ids=[slot.device], capabilities=[["gpu"]])]
                self.labels |= {SLOT_LABEL: slot.name, DEVICE_LABEL: slot.device}
                self.log.info("GPU %s (slot %s) of this host's %s", slot.device, slot.name, ",".join(self.gpu_devices))
            return self.run_container(context)

    def gpu_slot(self, gpu_mode: str) -> contextlib.AbstractContextManager[GpuSlot | None]:
        """This host's GPU for the task, held until it ends; none on the CPU queue and on the test GPU worker
        without devices (it proves the gpu route on machines with no GPU)."""
        if gpu_mode == "none" or (gpu_mode == "test" and not self.gpu_devices):
            return contextlib.nullcontext()
        if not self.gpu_devices:
            raise AirflowException("this GPU worker knows no GPU (HELICAL_GPU_DEVICES is empty): make up GPU=1 and "
                                   "make worker-host QUEUE=gpu fill it from nvidia-smi, or set GPU_DEVICES in .env")
        return hold_gpu_slot(self.gpu_devices, self.runners_per_gpu, self.gpu_lock_dir, self.running_gpu_slots)

    def running_gpu_slots(self) -> set[str]:
        return {container["Labels"][SLOT_LABEL] for container in
                self.cli.containers(filters={"label": [RUNNER_LABEL, SLOT_LABEL], "status": "running"})}

    def run_container(self, context: Any) -> Any:
        """The DockerOperator's run, its exit code sorted: bad input fails at once, anything else is retried."""
        try:
            log_lines = super().execute(context)
        except DockerContainerFailedException as err:
            code = exit_code(err)
            if code in RUNNER_INPUT_ERRORS:
                raise AirflowFailException(
                    f"helical-runner rejected {self.dataset} (exit {code}): its log above names the fix"
                ) from err
            raise AirflowException(f"{self.dataset}: {self.explain_crash(code)} (retried while tries remain)") from err
        self.cli.remove_container(self.container["Id"])
        return runner_summary(log_lines or [])

    def add_resource_limits(self) -> None:
        """Host settings the provider does not expose: a CPU quota, no swap, and a locked-down container.

        It only sets relative CPU shares; the runner sizes torch's thread pool from the quota, so runners
        never oversubscribe the host, and a runner over RUNNER_MEMORY is OOM-killed rather than swapping.
        A hostile dataset that exploits a parser finds a read-only root, no capabilities, no setuid, few PIDs.
        """
        self.cli.create_host_config = functools.partial(
            self.cli.create_host_config, nano_cpus=int(self.runner_cpus * 1e9), memswap_limit=self.mem_limit,
            **RUNNER_LOCKDOWN)

    def explain_crash(self, code: int | None) -> str:
        """Why the runner ended with a retryable exit code, and the fix when there is one."""
        if code == 137 and self.cli.inspect_container(self.container["Id"])["State"].get("OOMKilled"):
            return (f"the runner ran out of memory (limit {self.mem_limit}): raise RUNNER_MEMORY in .env, or "
                    "lower the run's max_cells or batch_size")
        reasons = {3: "the runner failed unexpectedly (its log above says why)",
                   137: "the runner was killed (SIGKILL)", 143: "the runner was stopped (SIGTERM: docker stop or a "
                   "worker shutting down)"}
        return reasons.get(code or 0, f"the runner exited {code}")

    def stop_earlier_tries(self) -> None:
        """A worker that died leaves its runner running: stop it before this try writes the same outputs.

        Found by the labels every try of this task instance shares; stopped (SIGTERM, exit 143), not removed,
        so `docker logs` still shows how far it got.
        """
        same_task = [f"{key}={self.labels[key]}" for key in (RUNNER_LABEL, "helical.task_id", "helical.run_id",
                                                               "helical.map_index")]
        for container in self.cli.containers(filters={"label": same_task, "status": "running"}):
            self.log.warning("stopping runner %s left running by an earlier try of this task (its worker died)",
                             container["Names"][0].lstrip("/"))
            self.cli.stop(container["Id"], timeout=ORPHAN_STOP_SECONDS)


def runner_summary(log_lines: list[str]) -> dict[str, Any] | None:
    """The runner's one-line JSON summary (docs/contracts.md): the last log line that starts with one.

    Docker reads stdout and stderr through separate pipes, so a stderr line may follow the JSON on its line
    (runners before #13 wrote the newline apart): only the JSON prefix of a line is read.
    """
    for line in reversed(log_lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                summary, _end = json.JSONDecoder().raw_decode(line)
            except ValueError:
                continue
            if isinstance(summary, dict) and "datasets" in summary:
                return summary
    return None


def exit_code(err: DockerContainerFailedException) -> int | None:
    """The container's exit status, which the provider only puts in the message ({'StatusCode': N, ...})."""
    match = re.search(r"'StatusCode': (\d+)", str(err))
    return int(match.group(1)) if match else None


def container_name(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> str:
    """Unique per task instance and try; Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-] in names."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"{dag_id}.{task_id}.{run_id}.{map_index}.try{try_number}")[:200]
