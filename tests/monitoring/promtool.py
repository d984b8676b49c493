"""Run promtool from the pinned prom/prometheus image (the stand-in on machines without a registry)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.monitoring.promql_names import MONITORING, REPO

COMPOSE_FILE = REPO / "compose" / "docker-compose.monitoring.yaml"


def prometheus_image() -> str:
    """The prom/prometheus image pinned in the compose file, so tests use the same version."""
    found = re.search(
        r"image:\s*(prom/prometheus:\S+)", COMPOSE_FILE.read_text(encoding="utf-8")
    )
    if not found:
        raise AssertionError(f"{COMPOSE_FILE}: no pinned prom/prometheus image")
    return found.group(1)


def promtool(
    *args: str, extra_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`promtool ARGS` with monitoring/ at /m and `extra_dir` (if any) at /t, both read-only."""
    if shutil.which("docker") is None:
        raise AssertionError(
            "docker is not on PATH: the promtool checks run it in the prom/prometheus image. "
            "Install Docker (or run ../shared/docker-offline/ensure-docker here)."
        )
    command = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "promtool",
               "-v", f"{MONITORING}:/m:ro"]  # fmt: skip
    if extra_dir is not None:
        command += ["-v", f"{extra_dir}:/t:ro"]
    command += [prometheus_image(), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False
    )
    if "Unable to find image" in result.stderr or "No such image" in result.stderr:
        raise AssertionError(
            f"image {prometheus_image()} is missing: run "
            f"../shared/docker-offline/ensure-images {prometheus_image()} (or docker pull it)"
        )
    return result
