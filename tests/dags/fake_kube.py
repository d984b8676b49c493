"""A Kubernetes API in memory: the calls the cncf-kubernetes provider makes for one runner pod, answered as the API
server would, so the provider's own code (PodManager, cleanup, reattach) runs unchanged against it.

A pod it creates has run already: it ends with the exit code (and reason) a test gives, after writing the test's
log lines. A pod a test puts in as running, an earlier try's, ends the same way once its log has been read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

BASE = "base"


@dataclass
class LogStream:
    """An HTTP response of a followed pod log (timestamps=True), as PodLogsConsumer reads it."""

    lines: list[str]

    def stream(self, amt: Any = None, decode_content: bool = True):
        for line in self.lines:
            yield f"2026-01-01T00:00:00.000000001Z {line}\n".encode()


@dataclass
class FakeKubeApi:
    log_lines: list[str] = field(default_factory=list)
    exit_code: int = 0
    reason: str | None = None
    pods: dict[str, k8s.V1Pod] = field(default_factory=dict)
    created: list[k8s.V1Pod] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    selectors: list[str] = field(default_factory=list)
    # (resource, verb) of every call, as RBAC names them: what the workers' Role must allow.
    calls: set[tuple[str, str]] = field(default_factory=set)
    api_client: ApiClient = field(default_factory=ApiClient)

    # --- what the provider calls ---------------------------------------------------------------------------
    def create_namespaced_pod(self, body: dict[str, Any], namespace: str, **_: Any) -> k8s.V1Pod:
        self.calls.add(("pods", "create"))
        pod = as_pod(body)
        assert pod.metadata.namespace == namespace
        self.created.append(pod)
        self.pods[pod.metadata.name] = self.ended(pod)
        return pod

    def read_namespaced_pod(self, name: str, namespace: str, **_: Any) -> k8s.V1Pod:
        self.calls.add(("pods", "get"))
        if name not in self.pods:
            raise ApiException(status=404, reason="Not Found")
        return self.pods[name]

    def list_namespaced_pod(self, namespace: str, label_selector: str, **_: Any) -> k8s.V1PodList:
        self.calls.add(("pods", "list"))
        self.selectors.append(label_selector)
        found = [pod for pod in self.pods.values()
                 if pod.metadata.namespace == namespace and selects(label_selector, pod.metadata.labels or {})]
        return k8s.V1PodList(items=found)

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str, **_: Any) -> LogStream:
        assert container == BASE
        self.calls.add(("pods/log", "get"))
        pod = self.pods[name]
        self.pods[name] = self.ended(pod)  # a running pod's log ends when the runner does
        return LogStream(self.log_lines)

    def list_namespaced_event(self, namespace: str, **_: Any) -> k8s.CoreV1EventList:
        self.calls.add(("events", "list"))
        return k8s.CoreV1EventList(items=[], metadata=k8s.V1ListMeta())

    def patch_namespaced_pod(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> k8s.V1Pod:
        self.calls.add(("pods", "patch"))
        pod = self.pods[name]
        pod.metadata.labels.update(body["metadata"]["labels"])
        return pod

    def delete_namespaced_pod(self, name: str, namespace: str, **_: Any) -> None:
        self.calls.add(("pods", "delete"))
        self.pods.pop(name, None)
        self.deleted.append(name)

    # --- what tests use --------------------------------------------------------------------------------------
    def put_running(self, pod: k8s.V1Pod) -> None:
        """An earlier try's pod, still running: its worker died."""
        pod.status = k8s.V1PodStatus(phase="Running", container_statuses=[container_status(
            pod, k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=datetime.now(UTC))))])
        self.pods[pod.metadata.name] = pod

    def ended(self, pod: k8s.V1Pod) -> k8s.V1Pod:
        terminated = k8s.V1ContainerStateTerminated(exit_code=self.exit_code, reason=self.reason,
                                                    finished_at=datetime.now(UTC))
        pod.status = k8s.V1PodStatus(phase="Succeeded" if self.exit_code == 0 else "Failed",
                                     container_statuses=[container_status(pod, k8s.V1ContainerState(
                                         terminated=terminated))])
        return pod


class FakeHook:
    """KubernetesHook as the operator uses it in the cluster, over the same API."""

    is_in_cluster = True

    def __init__(self, api: FakeKubeApi) -> None:
        self.api = api

    def get_namespace(self) -> None:
        return None

    def get_pod(self, name: str, namespace: str) -> k8s.V1Pod:
        return self.api.read_namespaced_pod(name, namespace)


class StateStore(dict):
    """The task state store of Airflow 3.3 (the provider keeps a pod's identity there)."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


def as_pod(body: dict[str, Any]) -> k8s.V1Pod:
    """The API server's answer to a create: the JSON it received, as the client's model."""
    return ApiClient().deserialize(type("Response", (), {"data": json.dumps(body)})(), "V1Pod")


def serialized(pod: k8s.V1Pod) -> dict[str, Any]:
    """The pod as the API server receives it (camelCase JSON)."""
    return ApiClient().sanitize_for_serialization(pod)


def container_status(pod: k8s.V1Pod, state: k8s.V1ContainerState) -> k8s.V1ContainerStatus:
    return k8s.V1ContainerStatus(name=BASE, image=pod.spec.containers[0].image, image_id="", ready=False,
                                 restart_count=0, state=state)


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: k=v, k!=v, !k (what the provider's find_pod sends)."""
    for term in selector.split(","):
        if term.startswith("!"):
            ok = term[1:] not in labels
        elif "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key) != value
        else:
            key, value = term.split("=", 1)
            ok = labels.get(key) == value
        if not ok:
            return False
    return True
