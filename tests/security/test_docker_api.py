"""The workers' Docker API (docker-policy, then socket-proxy) on the running stack, probed from a worker."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness import E2E, ROOT, compose


def inspect(container: str) -> dict:
    return json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                                     check=True).stdout)[0]


@pytest.fixture(scope="module")
def outcomes(stack) -> dict[str, list]:
    worker = compose("ps", "-q", "airflow-worker").split()[0]
    probe = (ROOT / "tests" / "security" / "docker_api_probe.py").read_text()
    done = subprocess.run(["docker", "exec", "-i", worker, "python", "-", "helical-runner:cpu"], input=probe,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_only_socket_proxy_mounts_the_docker_socket(stack):
    holders = []
    for container in compose("ps", "-q").split():
        details = inspect(container)
        if any(m["Source"] == "/var/run/docker.sock" for m in details["Mounts"]):
            holders.append(details["Config"]["Labels"]["com.docker.compose.service"])
        if details["Config"]["Labels"]["com.docker.compose.service"].startswith("airflow-worker"):
            assert "DOCKER_HOST=tcp://docker-policy:2375" in details["Config"]["Env"]
    assert holders == ["socket-proxy"]


@pytest.mark.parametrize(("attempt", "why"), [
    ("privileged", "Privileged is set"),
    ("pid host", "PidMode 'host' shares a namespace"),
    ("control network", "network 'helical_default' is not a runner network"),
    ("root user", "would run as root"),
    ("other image", "image 'postgres:16' is not a runner image"),
    ("no runner label", "the label helical.dag_id is missing"),
    ("inspect a service", "is not a runner container"),
    ("logs of a service", "is not a runner container"),
    ("remove a service", "is not a runner container"),
    ("bind /", "Forbidden"),  # socket-proxy: not under the data, results or models folder
    ("bind /var/run", "Forbidden"),
    ("volume create", "Forbidden"),  # socket-proxy: path not allowed
    ("exec", "Forbidden"),
    ("image pull", "Forbidden"),
])
def test_a_worker_cannot_reach_past_a_runner_through_the_proxy(outcomes, attempt, why):
    status, explanation = outcomes[attempt]
    assert status == 403 and why in explanation, outcomes[attempt]


def test_a_runner_runs_and_a_gpu_request_passes_through_the_proxy(outcomes):
    assert outcomes["one GPU"] == [201, "allowed"]  # created (not started: this machine has no GPU)
    assert outcomes["runner"] == ["through the proxy", 0, "through the proxy"]


def test_bind_mounts_are_allowed_from_the_workers_folders_only(stack):
    proxy = inspect(compose("ps", "-q", "socket-proxy").strip())
    (allowed,) = [arg.split("=", 1)[1] for arg in proxy["Args"] if arg.startswith("-allowbindmountfrom=")]
    worker = dict(var.split("=", 1) for var in inspect(compose("ps", "-q", "airflow-worker").split()[0])
                  ["Config"]["Env"])
    folders = [worker[f"HELICAL_{name}_DIR"] for name in ("DATA", "RESULTS", "MODELS")]
    assert allowed.split(",") == folders == [str(E2E / name) for name in ("data", "results", "models")]
    assert proxy["Config"]["User"].startswith("65534:") and proxy["HostConfig"]["ReadonlyRootfs"]
