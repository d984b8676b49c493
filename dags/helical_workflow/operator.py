"""The DockerOperator that runs helical-runner on one pack of datasets, on the queue the run was routed to."""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowException
from docker.types import DeviceRequest, Mount

from helical_workflow.contract import RUNNER_DATA_DIR, RUNNER_LABEL, RUNNER_MODELS_DIR, RUNNER_RESULTS_DIR, runner_summary
from helical_workflow.discovery import PlannedDataset
from helical_workflow.gpu_slots import DEVICE_LABEL, SLOT_LABEL, GpuSlot, hold_gpu_slot
from helical_workflow.names import RUNNER_LABELS
from helical_workflow.runner_launch import (
    RUNNER_STOP_SECONDS,
    RUNNER_TMP_SIZE,
    pack_name,
    plan_launch,
    runner_failure,
)
from helical_workflow.settings import load_settings

# The runner writes only to /results and /tmp (its image points every cache there).
RUNNER_LOCKDOWN = {"read_only": True, "tmpfs": {"/tmp": f"size={RUNNER_TMP_SIZE}"}, "cap_drop": ["ALL"],
                   "security_opt": ["no-new-privileges"], "pids_limit": 512}


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
        self.dataset = pack_name(datasets)
        self.gpu = gpu
        self.runner_cpus = settings.runner_cpus
        self.gpu_devices, self.runners_per_gpu = settings.gpu_devices, settings.runners_per_gpu
        self.gpu_lock_dir = settings.gpu_lock_dir

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        # Not templated fields, so they are set here, where the run's identity is known (runner_launch.py).
        launch = plan_launch(context, datasets=self.datasets, gpu=self.gpu, queue=self.queue)
        self.image, self.command, self.environment, self.labels = (launch.image, launch.command, launch.environment,
                                                                   launch.labels)
        self.container_name = container_name(ti.dag_id, ti.task_id, launch.labels[RUNNER_LABELS["run_id"]], ti.map_index,
                                             ti.try_number)
        self.log.info("runner %s on %s (queue %s, gpu mode %s)", self.image, self.dataset, self.queue, launch.gpu_mode)
        self.stop_earlier_tries()
        self.add_resource_limits()
        with self.gpu_slot(launch.gpu_mode) as slot:
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
        """The DockerOperator's run, its exit sorted by runner_failure: bad input fails at once, the rest retries."""
        try:
            log_lines = super().execute(context)
        except DockerContainerFailedException as err:
            code = exit_code(err)
            oom_killed = code == 137 and self.cli.inspect_container(self.container["Id"])["State"].get("OOMKilled")
            raise runner_failure(code, self.dataset, oom_killed=bool(oom_killed), memory_limit=self.mem_limit) from err
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

    def stop_earlier_tries(self) -> None:
        """A worker that died leaves its runner running: stop it before this try writes the same outputs.

        Found by the labels every try of this task instance shares; stopped (SIGTERM, exit 143), not removed,
        so `docker logs` still shows how far it got.
        """
        same_task = [f"{RUNNER_LABELS[key]}={self.labels[RUNNER_LABELS[key]]}"
                     for key in ("dag_id", "task_id", "run_id", "map_index")]
        for container in self.cli.containers(filters={"label": same_task, "status": "running"}):
            self.log.warning("stopping runner %s left running by an earlier try of this task (its worker died)",
                             container["Names"][0].lstrip("/"))
            self.cli.stop(container["Id"], timeout=RUNNER_STOP_SECONDS)


def exit_code(err: DockerContainerFailedException) -> int | None:
    """The container's exit status, which the provider only puts in the message ({'StatusCode': N, ...})."""
    match = re.search(r"'StatusCode': (\d+)", str(err))
    return int(match.group(1)) if match else None


def container_name(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> str:
    """Unique per task instance and try; Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-] in names."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"{dag_id}.{task_id}.{run_id}.{map_index}.try{try_number}")[:200]
