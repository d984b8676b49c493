"""Where runner pods go (RUNNER_LAUNCH_MODE=kubernetes), read from the env kubernetes/values.yaml gives the workers.

The defaults are the names kubernetes/base/ creates (tests/k8s checks that they agree). No Airflow or Kubernetes
import here, so the host's tests read it too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

# Docker's memory notation (RUNNER_MEMORY, docker/go-units RAMInBytes): binary multiples, unit letters in any case.
DOCKER_MEMORY = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
BINARY_SUFFIXES = {"": "", "k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti", "p": "Pi"}


@dataclass(frozen=True)
class PodSettings:
    """The runner namespace, the runner pods' service account and volume claims, and how GPU pods are placed."""

    namespace: str
    service_account: str
    data_claim: str
    models_claim: str
    results_claim: str
    gpu_node_selector: dict[str, str]
    gpu_tolerations: list[dict[str, Any]]
    # Seconds a pod may wait for a node (a GPU node scaling up) and then for its image (9 GB) before the try fails.
    start_timeout: int


def load_pod_settings(env: os._Environ[str] | dict[str, str] = os.environ) -> PodSettings:
    return PodSettings(
        namespace=env.get("HELICAL_RUNNER_NAMESPACE") or "helical-runners",
        service_account=env.get("HELICAL_RUNNER_SERVICE_ACCOUNT") or "helical-runner",
        data_claim=env.get("HELICAL_DATA_CLAIM") or "helical-data",
        models_claim=env.get("HELICAL_MODELS_CLAIM") or "helical-models",
        results_claim=env.get("HELICAL_RESULTS_CLAIM") or "helical-results",
        gpu_node_selector=json_setting(env, "HELICAL_GPU_NODE_SELECTOR", {}),
        gpu_tolerations=json_setting(env, "HELICAL_GPU_TOLERATIONS", []),
        start_timeout=int(env.get("HELICAL_RUNNER_POD_START_TIMEOUT") or 1800),
    )


def json_setting(env: os._Environ[str] | dict[str, str], name: str, default: Any) -> Any:
    """A JSON-valued setting (an object or a list, as its default is), or a clear error naming it."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{name} is not JSON ({err}): set it in the env of kubernetes/values-gpu.yaml") from err
    if type(value) is not type(default):
        raise ValueError(f"{name} must be a JSON {type(default).__name__}, got {raw!r} (kubernetes/values-gpu.yaml)")
    return value


def memory_quantity(docker_memory: str) -> str:
    """RUNNER_MEMORY as a Kubernetes quantity: Docker's "4g" is 4 GiB, which Kubernetes writes 4Gi (4G is 4e9)."""
    match = DOCKER_MEMORY.match(docker_memory.strip())
    if not match:
        raise ValueError(f"RUNNER_MEMORY={docker_memory!r} is not a Docker memory size (e.g. 4g, 512m)")
    number, unit = match.group(1), (match.group(2) or "").lower()
    if float(number).is_integer():
        return f"{int(float(number))}{BINARY_SUFFIXES[unit]}"
    exponent = "kmgtp".index(unit) + 1 if unit else 0
    return str(int(float(number) * 1024**exponent))


def cpu_quantity(cpus: float) -> str:
    """RUNNER_CPUS as a Kubernetes quantity: whole CPUs, else millicores (a quota of 0.5 CPU is 500m)."""
    if cpus <= 0:
        raise ValueError(f"RUNNER_CPUS={cpus} must be above 0")
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"
