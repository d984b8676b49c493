"""Run inside a Celery worker (python - < this file): what the worker's Docker API endpoint lets it do.

Prints one JSON object: for each attempt, [HTTP status, explanation] when refused, or [201, ...] when allowed.
Every attempt but the named one is a locked-down runner spec, so each refusal is for that one reason.
"""

import json
import os
import sys

import docker
from docker.types import DeviceRequest, LogConfig, Mount

client = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)
image = sys.argv[1]
UID = os.environ["HELICAL_RUNNER_UID"]
# The runner RunnerOperator asks for (docker-policy allows exactly this), smaller.
MOUNTS = [Mount("/data", os.environ["HELICAL_DATA_DIR"], type="bind", read_only=True),
          Mount("/results", os.environ["HELICAL_RESULTS_DIR"], type="bind"),
          Mount("/models", os.environ["HELICAL_MODELS_DIR"], type="bind", read_only=True)]
LOCKED = {"read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": 64,
          "mem_limit": "256m", "memswap_limit": "256m", "tmpfs": {"/tmp": "size=16m"},
          "nano_cpus": int(float(os.environ.get("HELICAL_RUNNER_CPUS") or 1) * 1e9), "mounts": MOUNTS,
          "log_config": LogConfig(config={"max-size": "1m", "max-file": "1"}),
          "network_mode": os.environ["HELICAL_DOCKER_NETWORK"]}


def create(command: list[str], container_image: str = image, user: str = f"{UID}:{UID}",
           labels: dict | None = None, **host: object) -> dict:
    return client.create_container(container_image, command, user=user,
                                   labels={"helical.dag_id": "security"} if labels is None else labels,
                                   host_config=client.create_host_config(**{**LOCKED, **host}))


def attempt(call) -> list:
    try:
        created = call()
    except docker.errors.APIError as err:
        return [err.status_code, str(err.explanation)]
    if isinstance(created, dict) and "Id" in created:
        client.remove_container(created["Id"], force=True)
    return [201, "allowed"]


outcomes = {
    "privileged": attempt(lambda: create(["true"], privileged=True)),
    "bind /": attempt(lambda: create(["true"], mounts=[*MOUNTS, Mount("/host", "/", type="bind")])),
    "bind /var/run": attempt(lambda: create(["true"], mounts=[*MOUNTS[:2], Mount("/models", "/var/run",
                                                                                   type="bind")])),
    "pid host": attempt(lambda: create(["true"], pid_mode="host")),
    "control network": attempt(lambda: create(["true"], network_mode="helical_default")),
    "root user": attempt(lambda: create(["true"], user="0")),
    "other image": attempt(lambda: create(["true"], container_image="postgres:16")),
    "no runner label": attempt(lambda: create(["true"], labels={"app": "x"})),
    "volume create": attempt(lambda: client.create_volume("security-probe")),
    "image pull": attempt(lambda: client.pull("alpine", tag="3")),
    "one GPU": attempt(lambda: create(["true"], device_requests=[DeviceRequest(device_ids=["0"],
                                                                               capabilities=[["gpu"]])])),
    "every GPU": attempt(lambda: create(["true"], device_requests=[DeviceRequest(count=-1,
                                                                                 capabilities=[["gpu"]])])),
    # The worker's own container stands for every container that is not a runner (Postgres, socket-proxy...).
    "inspect a service": attempt(lambda: client.inspect_container(os.environ["HOSTNAME"])),
    "logs of a service": attempt(lambda: client.logs(os.environ["HOSTNAME"])),
    "remove a service": attempt(lambda: client.remove_container(os.environ["HOSTNAME"])),
}
held = create(["true"])  # a runner container: calls on it pass the label check, exec is no call a runner makes
outcomes["exec"] = attempt(lambda: client.exec_create(held["Id"], ["id"]))
client.remove_container(held["Id"])
# The calls a runner task makes, in the DockerOperator's order: create, attach, start, stream, wait, logs.
runner = create(["python", "-c", "print('through the proxy')"])
stream = client.attach(runner["Id"], stdout=True, stderr=True, stream=True)
client.start(runner["Id"])
outcomes["runner"] = [b"".join(stream).decode().strip(), client.wait(runner["Id"])["StatusCode"],
                      client.logs(runner["Id"]).decode().strip()]
client.remove_container(runner["Id"])
print(json.dumps(outcomes))
