"""The two ways a runner task launches its runner (RUNNER_LAUNCH_MODE), each faked only at its engine's API:
DockerOperator.execute and its Docker client, or the Kubernetes API server under the provider's real code."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from fake_kube import FakeHook, FakeKubeApi

from helical_workflow.operator import RunnerOperator
from helical_workflow.pod_operator import RunnerPodOperator

DAG_ID = "helical_model_workflow"
PARAMS = {"data": "", "device": "auto", "max_cells": 100, "classifier": "off", "batch_size": None}
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
# Its results folder, label and --run-id (discovery.safe_run_id): ':' and '+' replaced, and the id's SHA-256 after '--'.
RUN_FOLDER = f"manual__2026-01-01T00_00_00_00_00--{hashlib.sha256(RUN_ID.encode()).hexdigest()}"
DATASETS = [{"dataset": "/data/lab/a.h5ad", "dataset_name": "lab__a"}, {"dataset": "/data/b.h5ad", "dataset_name": "b"}]
SUMMARY = {"run_id": "r", "ok": True, "datasets": []}
# stdout and stderr interleave: a log line may follow the summary.
LINES = ["INFO loading", json.dumps(SUMMARY), "INFO dataset x: ok"]
SETTINGS_ENV = {
    "HELICAL_RUNNER_CPUS": "0.5", "HELICAL_RUNNER_MEMORY": "3g", "HELICAL_RUNNER_CPU_IMAGE": "helical-runner:cpu",
    "HELICAL_RUNNER_GPU_IMAGE": "helical-runner:gpu", "HELICAL_STATSD_HOST": "statsd-exporter",
    "HELICAL_GPU_NODE_SELECTOR": '{"nvidia.com/gpu.present": "true"}',
    "HELICAL_GPU_TOLERATIONS": '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
}


@dataclass
class Launched:
    """What a runner task started, in terms both engines share, and what it returned."""

    image: str
    command: list[str]
    environment: dict[str, str]
    labels: dict[str, str]
    gpus: int
    summary: Any


class Ti(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def task_context(task_id: str, try_number: int = 1, **extra: Any) -> dict[str, Any]:
    ti = Ti(dag_id=DAG_ID, task_id=task_id, map_index=2, try_number=try_number, xcoms={})
    return {"ti": ti, "params": PARAMS, "run_id": RUN_ID, "dag": SimpleNamespace(), **extra}


def task_args(gpu: bool) -> dict[str, Any]:
    return {"task_id": "run_runner_gpu" if gpu else "run_runner_cpu", "queue": "gpu" if gpu else "cpu",
            "datasets": DATASETS, "gpu": gpu}


class DockerEngine:
    mode = "docker"

    def __init__(self, monkeypatch: Any) -> None:
        self.monkeypatch = monkeypatch

    def launch(self, *, gpu: bool, lines: list[str] = LINES, exit_code: int = 0, oom: bool = False) -> Launched:
        seen: dict[str, Any] = {}

        def execute(op: RunnerOperator, context: Any) -> list[str]:
            seen.update(image=op.image, command=op.command, env=op.environment, labels=op.labels,
                        devices=op.device_requests)
            if exit_code:
                raise DockerContainerFailedException(f"Docker container failed: {{'StatusCode': {exit_code}}}",
                                                     logs=lines)
            return lines

        # A GPU worker's host has GPUs (one here, its slot's lock file in a folder of the test's own); the test-only
        # GPU worker has none.
        if os.environ.get("HELICAL_GPU_WORKER_MODE") != "test":
            self.monkeypatch.setenv("HELICAL_GPU_DEVICES", "0")
            self.monkeypatch.setenv("HELICAL_GPU_LOCK_DIR", tempfile.mkdtemp(prefix="gpu-slots-"))
        self.monkeypatch.setattr(DockerOperator, "execute", execute)
        self.monkeypatch.setattr(RunnerOperator, "cli", SimpleNamespace(
            containers=lambda filters: [], create_host_config=lambda **kw: kw, remove_container=lambda cid: None,
            inspect_container=lambda cid: {"State": {"OOMKilled": oom}}), raising=False)
        op = RunnerOperator(**task_args(gpu))
        op.container = {"Id": "abc"}
        summary = op.execute(task_context(op.task_id))
        gpus = sum(len(request["DeviceIDs"] or []) for request in seen["devices"] or [])
        return Launched(seen["image"], seen["command"], seen["env"], seen["labels"], gpus, summary)


class KubernetesEngine:
    mode = "kubernetes"

    def __init__(self, monkeypatch: Any) -> None:
        self.api: FakeKubeApi | None = None

    def operator(self, gpu: bool, api: FakeKubeApi) -> RunnerPodOperator:
        op = RunnerPodOperator(**task_args(gpu))
        op.client, op.hook = api, FakeHook(api)
        return op

    def launch(self, *, gpu: bool, lines: list[str] = LINES, exit_code: int = 0, oom: bool = False) -> Launched:
        self.api = FakeKubeApi(log_lines=lines, exit_code=exit_code, reason="OOMKilled" if oom else None)
        op = self.operator(gpu, self.api)
        context = task_context(op.task_id)
        summary = op.execute(context)
        assert context["ti"].xcoms["return_value"] == summary  # what the load test reads back
        (pod,) = self.api.created
        container = pod.spec.containers[0]
        on_pod = {**pod.metadata.labels, **pod.metadata.annotations}
        labels = {key: value for key, value in on_pod.items() if key.startswith("helical.")}
        gpus = int((container.resources.limits or {}).get("nvidia.com/gpu", 0))
        return Launched(container.image, container.args, {env.name: env.value for env in container.env}, labels,
                        gpus, summary)


ENGINES = {engine.mode: engine for engine in (DockerEngine, KubernetesEngine)}
