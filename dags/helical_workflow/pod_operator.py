"""The KubernetesPodOperator that runs helical-runner on one pack of datasets (RUNNER_LAUNCH_MODE=kubernetes)."""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException
from kubernetes.client import models as k8s

from helical_workflow.contract import runner_summary
from helical_workflow.discovery import PlannedDataset
from helical_workflow.pod_settings import load_pod_settings, memory_quantity
from helical_workflow.pod_spec import (
    RESTRICTED_CONTAINER,
    gpu_tolerations,
    pod_labels_and_annotations,
    pod_security_context,
    runner_resources,
    runner_volume_mounts,
    runner_volumes,
)
from helical_workflow.runner_launch import (
    RUNNER_STOP_SECONDS,
    RunnerLaunch,
    pack_name,
    plan_launch,
    runner_failure,
)
from helical_workflow.settings import load_settings

# The key Airflow keeps a task's return value under (the provider's do_xcom_push means an XCom sidecar instead).
RETURN_VALUE = "return_value"


class RunnerPodOperator(KubernetesPodOperator):
    """helical-runner on `datasets` in a pod of the runner namespace, with RunnerOperator's contract
    (runner_launch.py): the same image, CLI, environment and labels, exit codes judged alike, every log line in
    the task log, the JSON summary as the task's return value. `gpu=True` asks for one nvidia.com/gpu on a node
    the GPU settings select, unless the worker is the test-only GPU worker (CPU image, no GPU), as on Docker.

    A worker that dies leaves its pod running. The next try reattaches to it instead of starting a second runner
    on the same outputs: the provider's durable mode (Airflow 3.3+) keeps the pod's name in the task state store
    and otherwise finds it by the labels every try shares, then follows its log from the start. A pod an earlier
    try left finished is deleted and a new one started; every pod is deleted at the end (its log is in the task
    log, its events too when it fails).
    """

    def __init__(self, *, datasets: list[PlannedDataset], gpu: bool = False, **kwargs: Any) -> None:
        settings, pods = load_settings(), load_pod_settings()
        super().__init__(
            # The workers run in the cluster: their service account is the one RBAC lets into the namespace.
            kubernetes_conn_id=None,
            in_cluster=True,
            namespace=pods.namespace,
            image=settings.gpu_image if gpu else settings.cpu_image,
            # A service account with no API rights, and no token in the pod: the runner talks to no API.
            service_account_name=pods.service_account,
            automount_service_account_token=False,
            security_context=pod_security_context(settings.runner_uid),
            container_security_context=RESTRICTED_CONTAINER,
            volumes=runner_volumes(pods),
            volume_mounts=runner_volume_mounts(),
            durable=True,
            on_finish_action="delete_pod",
            log_events_on_failure=True,
            log_pod_spec_on_failure=False,
            schedule_timeout_seconds=pods.start_timeout,
            startup_timeout_seconds=pods.start_timeout,
            termination_grace_period=RUNNER_STOP_SECONDS,
            **kwargs,
        )
        self.datasets = datasets
        self.dataset = pack_name(datasets)
        self.gpu = gpu
        self.memory_limit = memory_quantity(settings.runner_memory)
        self.gpu_placement = (pods.gpu_node_selector, gpu_tolerations(pods))
        # Every line the runner writes passes here on its way to the task log; the summary is read from them.
        self.log_formatter = self.keep_runner_line
        self.runner_lines: list[str] = []

    def execute(self, context: Any) -> Any:
        launch = self.prepare(context)
        self.log.info("runner pod %s on %s (queue %s, gpu mode %s)", self.image, self.dataset, self.queue,
                      launch.gpu_mode)
        super().execute(context)
        summary = runner_summary(self.runner_lines)
        context["ti"].xcom_push(key=RETURN_VALUE, value=summary)
        return summary

    def prepare(self, context: Any) -> RunnerLaunch:
        """Set what this try's pod runs (runner_launch.plan_launch) and what it may use; the pod is built from it."""
        launch = plan_launch(context, datasets=self.datasets, gpu=self.gpu, queue=self.queue)
        self.image, self.arguments, self.env_vars = launch.image, launch.command, launch.environment
        self.labels, self.annotations = pod_labels_and_annotations(launch.labels)
        self.container_resources = runner_resources(load_settings(), gets_gpu=launch.gets_gpu)
        if launch.gets_gpu:
            self.node_selector, self.tolerations = self.gpu_placement
        return launch

    def keep_runner_line(self, container: str, line: str) -> str:
        self.runner_lines.append(line)
        return f"[{container}] {line}"

    def cleanup(self, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, xcom_result: dict | None = None,
                context: Any = None) -> None:
        """The provider fails every failed pod alike; the runner's exit code says whether a retry can help."""
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowException as err:
            terminated = runner_termination(remote_pod, self.base_container_name)
            raise runner_failure(terminated.exit_code if terminated else None, self.dataset,
                                 oom_killed=bool(terminated and terminated.reason == "OOMKilled"),
                                 memory_limit=self.memory_limit) from err


def runner_termination(pod: k8s.V1Pod, container: str) -> k8s.V1ContainerStateTerminated | None:
    """How the runner container ended, if it did (a pod evicted before it started has no such state)."""
    statuses = (pod.status.container_statuses if pod and pod.status else None) or []
    for status in statuses:
        if status.name == container and status.state and status.state.terminated:
            return status.state.terminated
    return None
