"""The workers' Docker API (docker-policy, then socket-proxy) on the running stack, probed from a worker."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.harness import E2E, ROOT, compose


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
    ("privileged", "HostConfig.Privileged is not a setting a runner uses"),
    ("pid host", 'HostConfig.PidMode must be "", not "host"'),
    ("control network", 'HostConfig.NetworkMode must be "helical_runners", not "helical_default"'),
    ("root user", "User \"0\" is not the runners' user"),
    ("other image", 'Image "postgres:16" is not a runner image'),
    ("no runner label", "Labels must include the runner label 'helical.dag_id'"),
    ("inspect a service", "is not a runner container"),
    ("logs of a service", "is not a runner container"),
    ("remove a service", "is not a runner container"),
    ("bind /", "HostConfig.Mounts must be exactly"),
    ("bind /var/run", "HostConfig.Mounts has"),
    ("every GPU", "HostConfig.DeviceRequests must be one request for one GPU by id"),
    ("volume create", "/volumes/create is not a call a runner task makes"),
    ("exec", "/exec is not a call a runner task makes"),
    ("image pull", "/images/create is not a call a runner task makes"),
])
def test_a_worker_cannot_reach_past_a_runner_through_the_proxy(outcomes, attempt, why):
    status, explanation = outcomes[attempt]
    assert status == 403 and why in explanation, outcomes[attempt]


def test_a_runner_runs_and_a_gpu_request_passes_through_the_proxy(outcomes):
    assert outcomes["one GPU"] == [201, "allowed"]  # by device id; created, not started (no GPU here)
    assert outcomes["runner"] == ["through the proxy", 0, "through the proxy"]


def environment(container: str) -> dict[str, str]:
    return dict(var.split("=", 1) for var in inspect(container)["Config"]["Env"])


def test_bind_mounts_are_allowed_from_the_workers_folders_only(stack):
    proxy = inspect(compose("ps", "-q", "socket-proxy").strip())
    allowed = environment(proxy["Id"])["SP_ALLOWBINDMOUNTFROM"]
    gateway = environment(compose("ps", "-q", "docker-policy").strip())["DOCKER_POLICY_RUNNER_FOLDERS"]
    worker = environment(compose("ps", "-q", "airflow-worker").split()[0])
    folders = [worker[f"HELICAL_{name}_DIR"] for name in ("DATA", "RESULTS", "MODELS")]
    assert allowed.split(",") == gateway.split(",") == folders == [str(E2E / name) for name in
                                                                   ("data", "results", "models")]
    assert proxy["Config"]["Image"] == "wollomatic/socket-proxy:1.13.1"
    assert proxy["Config"]["User"].startswith("65534:") and proxy["HostConfig"]["ReadonlyRootfs"]
