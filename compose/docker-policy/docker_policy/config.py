"""What the gateway allows, from the environment compose sets (compose/docker-api.yaml): one source, .env."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Sizes as docker-py's parse_bytes reads them (RunnerOperator hands RUNNER_MEMORY to docker-py): 1024-based
# units, an optional trailing "b".
BYTE_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
SIZE = re.compile(r"(?P<digits>[0-9]+(?:\.[0-9]+)?)(?P<unit>[bkmg])?b?", re.IGNORECASE)
UID = re.compile(r"[1-9][0-9]{0,9}")


def parse_bytes(size: str) -> int:
    """`4g` -> 4294967296, as docker.utils.parse_bytes (checked against it by tests/unit)."""
    match = SIZE.fullmatch(size.strip())
    if not match:
        raise ValueError(f"{size!r} is not a size (e.g. 4g, 512m)")
    return int(float(match["digits"]) * BYTE_UNITS[(match["unit"] or "b").lower()])


def runner_user(uid: str) -> str:
    """The User of every runner: its uid, and the same number as its group (never group 0, which `uid` alone
    gives when the image has no passwd entry for it). dags/helical_workflow/settings.py sends the same."""
    if not UID.fullmatch(uid):
        raise ValueError(f"RUNNER_UID {uid!r} is not a non-root uid (digits, no leading zero, not 0)")
    return f"{uid}:{uid}"


@dataclass(frozen=True)
class Config:
    """The runner a worker may create, and the label that marks it (calls on containers without it are
    refused, so a worker cannot inspect, stop or remove the stack's own services)."""

    images: frozenset[str]
    network: str
    label: str
    user: str
    # Host folders mounted at /data (read-only), /results (read-write), /models (read-only): exact sources.
    data_dir: str
    results_dir: str
    models_dir: str
    max_memory: int
    max_nano_cpus: int


def from_environment(env: Mapping[str, str]) -> Config:
    """DOCKER_POLICY_* as compose/docker-api.yaml sets them; a missing or malformed one stops the gateway."""

    def value(key: str) -> str:
        found = env.get(key, "").strip()
        if not found:
            raise SystemExit(f"docker-policy: {key} is empty; compose/docker-api.yaml sets it from .env")
        return found

    folders = value("DOCKER_POLICY_RUNNER_FOLDERS").split(",")
    if len(folders) != 3 or not all(folder.startswith("/") for folder in folders):
        raise SystemExit("docker-policy: DOCKER_POLICY_RUNNER_FOLDERS must be the absolute data, results and "
                         f"models folders, comma-separated (HELICAL_*_DIR in .env), not {folders!r}")
    try:
        return Config(
            images=frozenset(name.strip() for name in value("DOCKER_POLICY_IMAGES").split(",") if name.strip()),
            network=value("DOCKER_POLICY_NETWORK"), label=value("DOCKER_POLICY_LABEL"),
            user=runner_user(value("DOCKER_POLICY_RUNNER_UID")),
            data_dir=folders[0], results_dir=folders[1], models_dir=folders[2],
            max_memory=parse_bytes(value("DOCKER_POLICY_RUNNER_MEMORY")),
            max_nano_cpus=int(float(value("DOCKER_POLICY_RUNNER_CPUS")) * 1e9),
        )
    except ValueError as err:
        raise SystemExit(f"docker-policy: {err}; fix it in .env") from err
