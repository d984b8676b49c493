"""The runner pods RUNNER_LAUNCH_MODE=kubernetes starts, built by the provider (build_pod_request_obj) from the
settings kubernetes/base/settings.env gives the workers: valid for the pinned Kubernetes version, Pod Security
"restricted", the runner's volumes and bounds, one GPU on the chosen nodes for a GPU runner; and an earlier try's
pod reattached rather than doubled. Run by make test-dags and make test-k8s."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fake_kube import FakeHook, FakeKubeApi, StateStore, serialized
from launch_engines import LINES, SUMMARY, task_args, task_context

from helical_workflow.pod_operator import RunnerPodOperator

KUBERNETES = Path("/opt/airflow/kubernetes")  # the repository's kubernetes/ (compose/airflow-test.yaml mounts it)
KUBERNETES_VERSION = str(yaml.safe_load((KUBERNETES / "versions.yaml").read_text())["kubernetes"])
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Pod Security Standards, "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards).
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret"}


def settings_env() -> dict[str, str]:
    """kubernetes/base/settings.env as kustomize's configMapGenerator reads it (tests/k8s compares the two)."""
    lines = (KUBERNETES / "base" / "settings.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture
def deployed(monkeypatch):
    """The workers' environment on Kubernetes."""
    for name, value in settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HELICAL_GPU_WORKER_MODE", raising=False)


def built_pod(gpu: bool, **context: Any) -> dict[str, Any]:
    op = RunnerPodOperator(**task_args(gpu))
    ctx = task_context(op.task_id, **context)
    op.prepare(ctx)
    return serialized(op.build_pod_request_obj(ctx, dry_run=True))


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod out of a namespace enforcing Pod Security "restricted" (what this pod can hold of it)."""
    spec, found = pod["spec"], []
    pod_context = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(key)
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for container in spec["containers"] + (spec.get("initContainers") or []):
        context = container.get("securityContext") or {}
        name = container["name"]
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []) or set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities {capabilities}")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        if container.get("ports") and any(port.get("hostPort") for port in container["ports"]):
            found.append(f"{name}: hostPort")
    return found


@pytest.mark.parametrize("gpu", [False, True])
def test_the_runner_pods_validate_strictly_at_the_pinned_kubernetes_version(deployed, gpu):
    pod = built_pod(gpu)
    assert kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert restricted_violations(pod) == []


@pytest.mark.parametrize(("change", "violation"), [
    (lambda pod: pod["spec"].update(hostNetwork=True), "hostNetwork"),
    (lambda pod: pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}}), "volume host"),
    (lambda pod: pod["spec"]["securityContext"].update(runAsUser=0), "runAsUser 0"),
    (lambda pod: pod["spec"]["containers"][0]["securityContext"].update(privileged=True), "privileged"),
    (lambda pod: pod["spec"]["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
     "capabilities"),
    (lambda pod: pod["spec"]["containers"][0]["securityContext"].pop("seccompProfile")
     and pod["spec"]["securityContext"].pop("seccompProfile"), "seccompProfile None"),
])
def test_the_restricted_check_catches_what_the_profile_forbids(deployed, change, violation):
    pod = built_pod(False)
    change(pod)
    assert any(violation in found for found in restricted_violations(pod)), restricted_violations(pod)


def test_a_runner_pod_meets_the_restricted_profile_itself(deployed):
    pod = built_pod(False)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 50000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert (spec["serviceAccountName"], spec["automountServiceAccountToken"]) == ("helical-runner", False)
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"]) == ("Never", 10)
    assert pod["metadata"]["namespace"] == "helical-runners"


def test_a_runner_pod_mounts_the_claims_and_a_bounded_tmp(deployed):
    spec = built_pod(False)["spec"]
    assert spec["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "helical-data", "readOnly": True}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "helical-models", "readOnly": True}},
        {"name": "results", "persistentVolumeClaim": {"claimName": "helical-results", "readOnly": False}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
    ]
    assert spec["containers"][0]["volumeMounts"] == [
        {"mountPath": "/data", "name": "data", "readOnly": True},
        {"mountPath": "/models", "name": "models", "readOnly": True},
        {"mountPath": "/results", "name": "results", "readOnly": False},
        {"mountPath": "/tmp", "name": "tmp", "readOnly": False},
    ]


def test_a_cpu_runner_pod_is_bounded_by_the_runner_settings_and_gets_no_gpu(deployed):
    pod = built_pod(False)
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "1", "memory": "4Gi"}}
    assert not pod["spec"].get("nodeSelector") and not pod["spec"].get("tolerations")
    assert container["image"] == "helical-runner:cpu"


def test_a_gpu_runner_pod_requests_one_gpu_on_the_gpu_nodes(deployed):
    pod = built_pod(True)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    bounds = {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert container["resources"] == {"requests": bounds, "limits": bounds}
    assert spec["nodeSelector"] == json.loads(settings_env()["HELICAL_GPU_NODE_SELECTOR"])
    assert spec["tolerations"] == json.loads(settings_env()["HELICAL_GPU_TOLERATIONS"])
    assert container["image"] == "helical-runner:gpu"
    assert container["args"][container["args"].index("--device") + 1] == "cuda"


def test_the_test_only_gpu_worker_asks_for_no_gpu(deployed, monkeypatch):
    monkeypatch.setenv("HELICAL_GPU_WORKER_MODE", "test")
    pod = built_pod(True)
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    assert not pod["spec"].get("nodeSelector")


def test_labels_are_label_safe_and_the_pack_is_an_annotation(deployed):
    long_run = "manual__" + "x" * 80
    pod = built_pod(False, run_id=long_run)
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert all(LABEL_VALUE.match(value) and len(value) <= 63 for value in labels.values()), labels
    assert labels["helical.run_id"] != long_run and labels["helical.run_id"].startswith("manual__xxx")
    assert labels["helical.dag_id"] == "helical_model_workflow" and labels["helical.map_index"] == "2"
    assert annotations == {"helical.dataset": "/data/lab/a.h5ad,/data/b.h5ad"}
    # The container is told the full run id: outputs go to results/<run id>, whatever its label says.
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--run-id") + 1] == long_run


# --- an earlier try's pod ------------------------------------------------------------------------------------------

def earlier_pod(api: FakeKubeApi) -> Any:
    """The pod try 1 started before its worker died."""
    op = RunnerPodOperator(**task_args(False))
    op.hook = FakeHook(api)
    ctx = task_context(op.task_id, try_number=1)
    op.prepare(ctx)
    return op.build_pod_request_obj(ctx)


def second_try(api: FakeKubeApi, **context: Any) -> tuple[Any, dict[str, Any]]:
    op = RunnerPodOperator(**task_args(False))
    op.client, op.hook = api, FakeHook(api)
    ctx = task_context(op.task_id, try_number=2, **context)
    return op.execute(ctx), ctx


def test_a_running_pod_of_an_earlier_try_is_reattached_by_its_labels(deployed):
    api = FakeKubeApi(log_lines=LINES)
    orphan = earlier_pod(api)
    api.put_running(orphan)
    summary, ctx = second_try(api)
    assert api.created == [] and summary == SUMMARY  # followed to its end, its log read from the start
    assert api.deleted == [orphan.metadata.name]
    selector = api.selectors[0]
    for label in ("helical.dag_id=helical_model_workflow", "helical.task_id=run_runner_cpu", "helical.map_index=2",
                  "task_id=run_runner_cpu", "map_index=2", "already_checked!=True"):
        assert label in selector.split(","), selector
    assert "try_number" not in selector
    assert ctx["ti"].xcoms["pod_name"] == orphan.metadata.name


def test_a_running_pod_of_an_earlier_try_is_reattached_by_the_name_the_task_state_store_kept(deployed):
    api = FakeKubeApi(log_lines=LINES)
    orphan = earlier_pod(api)
    orphan.metadata.labels["helical.gpu_mode"] = "another"  # no label search could find it
    api.put_running(orphan)
    store = StateStore(pod_identifier={"name": orphan.metadata.name, "namespace": orphan.metadata.namespace})
    summary, _ = second_try(api, task_state_store=store)
    assert api.created == [] and summary == SUMMARY


def test_a_finished_pod_of_an_earlier_try_is_deleted_and_a_new_one_runs(deployed):
    api = FakeKubeApi(log_lines=LINES, exit_code=3)
    orphan = earlier_pod(api)
    api.pods[orphan.metadata.name] = api.ended(orphan)  # failed while its worker was dead
    api.exit_code = 0
    summary, _ = second_try(api)
    (new,) = api.created
    assert new.metadata.name != orphan.metadata.name and orphan.metadata.name in api.deleted
    assert new.metadata.labels["try_number"] == "2" and summary == SUMMARY


def test_another_map_index_is_another_pod(deployed):
    api = FakeKubeApi(log_lines=LINES)
    orphan = earlier_pod(api)
    orphan.metadata.labels["helical.map_index"] = orphan.metadata.labels["map_index"] = "3"
    api.put_running(orphan)
    second_try(api)
    assert len(api.created) == 1 and orphan.metadata.name in api.pods  # left to its own task's next try


@pytest.mark.parametrize("code", [0, 1, 3])
def test_every_pod_is_deleted_when_its_runner_ends(deployed, code):
    api = FakeKubeApi(log_lines=LINES, exit_code=code)
    try:
        second_try(api)
    except Exception:
        assert code != 0
    assert [pod.metadata.name for pod in api.created] == api.deleted and not api.pods


def test_the_workers_role_allows_what_the_provider_calls_and_nothing_more(deployed):
    calls: set[tuple[str, str]] = set()
    for code in (0, 1):  # a runner that succeeds, one that fails
        api = FakeKubeApi(log_lines=LINES, exit_code=code)
        try:
            second_try(api)
        except Exception:
            assert code
        calls |= api.calls
    api = FakeKubeApi(log_lines=LINES)  # a reattach through the task state store
    orphan = earlier_pod(api)
    api.put_running(orphan)
    second_try(api, task_state_store=StateStore(pod_identifier={"name": orphan.metadata.name,
                                                                "namespace": orphan.metadata.namespace}))
    calls |= api.calls
    rbac = yaml.safe_load_all((KUBERNETES / "base" / "runner-rbac.yaml").read_text())
    (role,) = [doc for doc in rbac if doc["kind"] == "Role"]
    allowed = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert calls == allowed


def test_every_runner_line_reaches_the_task_log(deployed, capsys):
    api = FakeKubeApi(log_lines=LINES)
    second_try(api)
    logged = capsys.readouterr()
    assert all(f"[base] {line}" in logged.out + logged.err for line in LINES)
