"""kubernetes/ as make test-k8s reads it: the rendered manifests (kubectl kustomize, from the locked wheel), the
chart values, their keys, the pinned versions and the workflow's settings."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "kubernetes"
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"  # make k8s-tools puts it there
KUSTOMIZATIONS = ("base", "overlays/nfs")
VALUES_FILES = ("values.yaml", "values-gpu.yaml", "values-statsd.yaml")


def versions() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "versions.yaml").read_text())


def kubernetes_version() -> str:
    return str(versions()["kubernetes"])


@functools.cache
def rendered(kustomization: str) -> tuple[dict[str, Any], ...]:
    """What `kubectl apply -k kubernetes/<kustomization>` would send."""
    if not KUBECTL.exists():
        raise AssertionError(f"no {KUBECTL}: run `make k8s-tools` (make test-k8s does)")
    out = subprocess.run([str(KUBECTL), "kustomize", str(KUBERNETES / kustomization)], capture_output=True,
                         text=True, check=True).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def objects(kustomization: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return [doc for doc in rendered(kustomization) if doc["kind"] == kind
            and (namespace is None or doc["metadata"].get("namespace") == namespace)]


def one(kustomization: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    (found,) = [doc for doc in objects(kustomization, kind, namespace) if doc["metadata"]["name"] == name]
    return found


def values(name: str = "values.yaml") -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / name).read_text())


def settings_env() -> dict[str, str]:
    """kubernetes/base/settings.env as tests/dags/test_runner_pod.py reads it (compared with kustomize's result)."""
    lines = (KUBERNETES / "base" / "settings.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def key_paths(tree: Any, free_form: set[str], prefix: str = "") -> Iterator[str]:
    """Every key path a values tree sets (`a.b`, list items as `a[].b`), stopping at free-form keys."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            if path not in free_form:
                yield from key_paths(value, free_form, path)
    elif isinstance(tree, list):
        for item in tree:
            yield from key_paths(item, free_form, f"{prefix}[]")


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, value) of every scalar in a values tree, free-form parts included."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list):
        for item in tree:
            yield from leaves(item, f"{prefix}[]")
    else:
        yield prefix, tree
