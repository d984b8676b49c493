"""The stack's compose model as `docker compose config` resolves it (includes, extends, merges, interpolation), for
tests of what is deployed rather than of what one file says. Settings come from a fresh config/make-env.sh .env
(every secret generated), plus the ones a test passes.

    services = rendered(BIND_ADDRESS="0.0.0.0")["services"]
    values = env_values()          # that .env, to look for its secrets in the model
    core = compose_file("docker-compose.yaml")   # one file as written, without docker (merge tags as plain values)
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_FILE = "compose/docker-compose.cluster.yaml"
# The core's secrets and logins (.env): none may reach a Celery worker, on the core or on a worker host.
CORE_SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                "_AIRFLOW_WWW_USER_PASSWORD", "FLOWER_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def names_env() -> dict[str, str]:
    """config/names.env: the NAME_* variables compose reads (make and .env pass them)."""
    lines = (ROOT / "config" / "names.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@functools.cache
def env_values() -> dict[str, str]:
    """A fresh .env's settings, as `make env` writes it (generated once per test session)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".env"
        subprocess.run([str(ROOT / "config" / "make-env.sh"), str(path)], check=True, capture_output=True)
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
        return dict(pairs)


def rendered(*files: str, **settings: str) -> dict[str, Any]:
    """`docker compose config` of compose.yaml plus `files` (repository-relative), every profile on."""
    return _rendered(files, tuple(sorted(settings.items())))


@functools.cache
def _rendered(files: tuple[str, ...], settings: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **names_env(), **env_values(),
           **dict(settings)}
    flags = [flag for name in ("compose.yaml", *files) for flag in ("-f", name)]
    done = subprocess.run(["docker", "compose", *flags, "--profile", "*", "config", "--format", "json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"docker compose config failed (Docker Compose v2 is needed): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


class _ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (!override, !reset) read as plain values."""


def _untagged(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_ComposeLoader.add_multi_constructor("!", _untagged)


def compose_file(name: str) -> dict[str, Any]:
    """compose/<name> as written (no include, extends or interpolation resolved)."""
    return yaml.load((ROOT / "compose" / name).read_text(), Loader=_ComposeLoader)
