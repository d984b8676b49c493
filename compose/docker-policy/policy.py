"""What a container create request may ask for: a locked-down runner, and nothing that reaches into the host.

socket-proxy allows methods and paths and limits bind-mount sources; it cannot see the rest of a create
request. A worker that can create a privileged container, join the host's namespaces, add devices or
capabilities, mount a named volume or join the control-plane network is root on the host or in the stack.
The rules below are what RunnerOperator sends (dags/helical_workflow/operator.py), stated as requirements.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

CREATE_PATH = re.compile(r"^(/v[0-9.]+)?/containers/create$")
# A call on one container (inspect, logs, attach, start, wait, stop, remove, and anything else under its path).
CONTAINER_PATH = re.compile(r"^(/v[0-9.]+)?/containers/(?P<id>[^/]+)(/.*)?$")
NOT_CONTAINER_IDS = ("create", "json", "prune")
# Namespaces a container may share with the host ("host") or with another container ("container:<id>").
SHARED_NAMESPACES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
# Host settings that a runner never needs and that each open a way out of the container.
FORBIDDEN_WHEN_SET = ("Privileged", "CapAdd", "Devices", "DeviceCgroupRules", "Binds", "VolumesFrom", "Sysctls",
                      "CgroupParent", "OomKillDisable", "PortBindings", "PublishAllPorts", "Links")
# Mount types a runner uses: the data/results/models folders (sources checked by socket-proxy) and tmpfs.
ALLOWED_MOUNT_TYPES = ("bind", "tmpfs")
ALLOWED_RUNTIMES = ("", "runc", "nvidia")
ROOT_USERS = ("", "0", "root")


@dataclass(frozen=True)
class Policy:
    """The runner images and networks that containers created through the proxy may use, and the label that
    marks them: calls on a container without it (the stack's own services, anything else on the host) are
    refused, so a worker cannot stop, remove or read the containers it did not create."""

    images: frozenset[str]
    networks: frozenset[str]
    label: str

    def refusal(self, method: str, path: str, body: bytes) -> str | None:
        """Why this request is refused, or None. Only container creates are read; anything else passes."""
        if method != "POST" or not CREATE_PATH.match(path):
            return None
        try:
            spec = json.loads(body or b"{}")
        except ValueError:
            return "the container spec is not JSON"
        if not isinstance(spec, dict):
            return "the container spec is not a JSON object"
        problems = self.container_problems(spec)
        return "; ".join(problems) or None

    def target_container(self, path: str) -> str | None:
        """The container a call is about, whose labels decide whether the worker may make it."""
        match = CONTAINER_PATH.match(path)
        return match["id"] if match and match["id"] not in NOT_CONTAINER_IDS else None

    def is_runner(self, labels: dict[str, str] | None) -> bool:
        return self.label in (labels or {})

    def container_problems(self, spec: dict[str, Any]) -> list[str]:
        host = spec.get("HostConfig") or {}
        problems = [f"{key} is set" for key in FORBIDDEN_WHEN_SET if host.get(key)]
        if not self.is_runner(spec.get("Labels")):
            problems.append(f"the label {self.label} is missing (it marks runner containers)")
        if spec.get("Image") not in self.images:
            problems.append(f"image {spec.get('Image')!r} is not a runner image ({', '.join(sorted(self.images))})")
        if str(spec.get("User") or "").split(":")[0] in ROOT_USERS:
            problems.append("the container would run as root (set a non-root user)")
        problems += [f"{key} {host[key]!r} shares a namespace" for key in SHARED_NAMESPACES
                     if str(host.get(key) or "").startswith(("host", "container:"))]
        if "ALL" not in (host.get("CapDrop") or []):
            problems.append("CapDrop lacks ALL")
        security = host.get("SecurityOpt") or []
        if not any(opt.split(":")[0].split("=")[0] == "no-new-privileges" for opt in security):
            problems.append("SecurityOpt lacks no-new-privileges")
        problems += [f"SecurityOpt {opt!r} weakens confinement" for opt in security
                     if "unconfined" in opt or "disable" in opt]
        if not host.get("ReadonlyRootfs"):
            problems.append("the root filesystem is writable (ReadonlyRootfs)")
        if not (host.get("Memory") or 0) > 0 or not (host.get("PidsLimit") or 0) > 0:
            problems.append("Memory and PidsLimit must be bounded")
        if (host.get("Runtime") or "") not in ALLOWED_RUNTIMES:
            problems.append(f"runtime {host['Runtime']!r} is not allowed")
        problems += [f"a {mount.get('Type')!r} mount is not allowed" for mount in host.get("Mounts") or []
                     if mount.get("Type") not in ALLOWED_MOUNT_TYPES]
        problems += [f"device request {request!r} asks for more than a GPU" for request in
                     host.get("DeviceRequests") or [] if not is_gpu_request(request)]
        problems += self.network_problems(host, spec.get("NetworkingConfig") or {})
        return problems

    def network_problems(self, host: dict[str, Any], networking: dict[str, Any]) -> list[str]:
        joined = {host.get("NetworkMode") or "default", *(networking.get("EndpointsConfig") or {})}
        return [f"network {name!r} is not a runner network ({', '.join(sorted(self.networks))})"
                for name in sorted(joined - self.networks)]


def is_gpu_request(request: dict[str, Any]) -> bool:
    """What RunnerOperator asks for on the GPU queue: GPUs through the NVIDIA driver, nothing else."""
    return request.get("Capabilities") == [["gpu"]] and (request.get("Driver") or "") in ("", "nvidia")


def from_environment(env: dict[str, str]) -> Policy:
    """DOCKER_POLICY_IMAGES and DOCKER_POLICY_NETWORKS (comma-separated), DOCKER_POLICY_LABEL: set by compose."""

    def names(key: str) -> frozenset[str]:
        values = frozenset(name.strip() for name in env.get(key, "").split(",") if name.strip())
        if not values:
            raise SystemExit(f"docker-policy: {key} is empty; compose/docker-compose.yaml sets it")
        return values

    images, networks = names("DOCKER_POLICY_IMAGES"), names("DOCKER_POLICY_NETWORKS")
    (label,) = names("DOCKER_POLICY_LABEL")
    return Policy(images=images, networks=networks, label=label)
