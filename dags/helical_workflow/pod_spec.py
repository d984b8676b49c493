"""The parts of a runner pod (RUNNER_LAUNCH_MODE=kubernetes): Pod Security "restricted", the runner container's bounds.

What RunnerOperator asks of the Docker engine (operator.py's RUNNER_LOCKDOWN, its mounts and limits), said in a pod
spec: a non-root runner uid, a read-only root, no capabilities, no privilege escalation, the RuntimeDefault seccomp
profile, data and models read-only, /tmp the only other writable place, CPU and memory requests equal to limits.
"""

from __future__ import annotations

from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value
from kubernetes.client import models as k8s

from helical_workflow.contract import RUNNER_DATA_DIR, RUNNER_MODELS_DIR, RUNNER_RESULTS_DIR
from helical_workflow.names import RUNNER_LABELS
from helical_workflow.pod_settings import PodSettings, cpu_quantity, memory_quantity
from helical_workflow.runner_launch import RUNNER_TMP_SIZE
from helical_workflow.settings import Settings

GPU_RESOURCE = "nvidia.com/gpu"
# Label values Kubernetes cannot hold (paths, commas, over 63 characters) travel as annotations instead.
ANNOTATED_LABELS = (RUNNER_LABELS["dataset"],)
RUNTIME_DEFAULT = k8s.V1SeccompProfile(type="RuntimeDefault")
RESTRICTED_CONTAINER = k8s.V1SecurityContext(
    allow_privilege_escalation=False,
    read_only_root_filesystem=True,
    run_as_non_root=True,
    capabilities=k8s.V1Capabilities(drop=["ALL"]),
    seccomp_profile=RUNTIME_DEFAULT,
)
# The volumes' names, and where the runner sees each (its image's defaults, contract.py).
MOUNTS = {"data": (str(RUNNER_DATA_DIR), True), "models": (str(RUNNER_MODELS_DIR), True),
          "results": (str(RUNNER_RESULTS_DIR), False), "tmp": ("/tmp", False)}
# Keys of a toleration in the JSON of HELICAL_GPU_TOLERATIONS, and their names in the client's model.
TOLERATION_KEYS = {"key": "key", "operator": "operator", "value": "value", "effect": "effect",
                   "tolerationSeconds": "toleration_seconds"}


def pod_security_context(runner_uid: str) -> k8s.V1PodSecurityContext:
    uid = int(runner_uid)
    if uid == 0:
        raise ValueError("HELICAL_RUNNER_UID=0: runners never run as root; set a non-zero uid (kubernetes/values.yaml)")
    return k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=uid, seccomp_profile=RUNTIME_DEFAULT)


def runner_volumes(pods: PodSettings) -> list[k8s.V1Volume]:
    """The shared folders as ReadWriteMany claims of the runner namespace (data and models read-only), and /tmp."""
    claims = {"data": (pods.data_claim, True), "models": (pods.models_claim, True),
              "results": (pods.results_claim, False)}
    volumes = [k8s.V1Volume(name=name, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
        claim_name=claim, read_only=read_only)) for name, (claim, read_only) in claims.items()]
    # On the node's disk, not in memory (a tmpfs would count against the runner's memory limit).
    tmp = k8s.V1EmptyDirVolumeSource(size_limit=memory_quantity(RUNNER_TMP_SIZE))
    return [*volumes, k8s.V1Volume(name="tmp", empty_dir=tmp)]


def runner_volume_mounts() -> list[k8s.V1VolumeMount]:
    return [k8s.V1VolumeMount(name=name, mount_path=path, read_only=read_only)
            for name, (path, read_only) in MOUNTS.items()]


def runner_resources(settings: Settings, *, gets_gpu: bool) -> k8s.V1ResourceRequirements:
    """RUNNER_CPUS and RUNNER_MEMORY as requests equal to limits (a quota torch's threads follow, as on Docker),
    and one GPU for a GPU runner."""
    bounds = {"cpu": cpu_quantity(settings.runner_cpus), "memory": memory_quantity(settings.runner_memory)}
    if gets_gpu:
        bounds[GPU_RESOURCE] = "1"
    return k8s.V1ResourceRequirements(requests=dict(bounds), limits=dict(bounds))


def gpu_tolerations(pods: PodSettings) -> list[k8s.V1Toleration]:
    tolerations = []
    for toleration in pods.gpu_tolerations:
        unknown = set(toleration) - set(TOLERATION_KEYS)
        if unknown:
            raise ValueError(f"HELICAL_GPU_TOLERATIONS: unknown keys {sorted(unknown)} in {toleration} "
                             f"(a toleration has {', '.join(TOLERATION_KEYS)})")
        tolerations.append(k8s.V1Toleration(**{TOLERATION_KEYS[key]: value for key, value in toleration.items()}))
    return tolerations


def pod_labels_and_annotations(labels: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The runner's labels as Kubernetes accepts them: values made label-safe (a long run id is shortened and
    hashed, as the provider does for its own labels), and those no label can hold moved to annotations."""
    annotations = {key: value for key, value in labels.items() if key in ANNOTATED_LABELS}
    safe = {key: make_safe_label_value(value) for key, value in labels.items() if key not in ANNOTATED_LABELS}
    return safe, annotations

