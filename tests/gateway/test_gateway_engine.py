"""docker-policy in front of the real socket-proxy 1.13.1 and the real engine, no stack (make test-gateway).

Throw-away parts only, all named hx-gateway-<nonce>: an internal network, socket-proxy started with the
allowlist of compose/docker-api.yaml (its -allowfrom opened to this host, its port on 127.0.0.1 only), and
temporary data/results/models folders. The gateway runs in this process. One locked-down container is created,
run (python printing a line, no privilege, no network route) and removed through both lines; every hostile
request must leave the engine's record without a container of this run's label.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import yaml
from docker.types import LogConfig, Mount

from docker_policy import strict_json
from docker_policy.config import Config
from docker_policy.create_spec import canonical_spec
from tests.gateway_harness import (
    answer_of,
    exchange,
    http_request,
    runner_spec,
    running_engine,
    running_gateway,
    unexpected_answers,
)

ROOT = Path(__file__).resolve().parents[2]
SOCKET_PROXY = "wollomatic/socket-proxy:1.13.1"
# Any image the engine has: the stack's base image. The container only prints a line.
IMAGE = "python:3.12-slim-bookworm"
NONCE = secrets.token_hex(4)
PREFIX = f"hx-gateway-{NONCE}"
PROBE_LABEL = "helical.probe"


def docker_cli(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120).stdout


def engine_reachable() -> bool:
    if shutil.which("docker") is None or os.environ.get("DOCKER_HOST", "unix://").split(":")[0] not in ("unix", ""):
        return False  # bind sources are this machine's folders: the engine must run here
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


pytestmark = pytest.mark.skipif(not engine_reachable(), reason="needs a local Docker engine")


def containers_of_this_run() -> list[str]:
    return docker_cli("ps", "-aq", "--filter", f"label={PROBE_LABEL}={NONCE}").split()


def direct(port: int, method: str, target: str, body: bytes = b"") -> bytes:
    """A request straight to socket-proxy, as if the gateway were not there ("" while it is starting)."""
    try:
        return exchange(port, http_request(method, target, body, headers="Host: docker\r\nConnection: close\r\n"
                                           "Content-Type: application/json\r\n"), timeout=30)
    except ConnectionError:
        return b""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Iterator[Config]:
    folders = [tmp_path_factory.mktemp(name) for name in ("data", "results", "models")]
    network = f"{PREFIX}-runners"
    if not docker_cli("image", "ls", "-q", IMAGE).strip():
        pytest.fail(f"{IMAGE} is missing: docker pull {IMAGE} (or make images, which builds on it)")
    docker_cli("network", "create", "--internal", "--label", f"{PROBE_LABEL}={NONCE}", network)
    yield Config(images=frozenset({IMAGE}), network=network, label="helical.dag_id", user="1000:1000",
                 data_dir=str(folders[0]), results_dir=str(folders[1]), models_dir=str(folders[2]),
                 max_memory=256 << 20, max_nano_cpus=10**9)
    for container in containers_of_this_run():
        docker_cli("rm", "-f", container, check=False)
    docker_cli("network", "rm", network, check=False)


@contextmanager
def socket_proxy_container(name: str, config: Config, socket_dir: Path | None = None) -> Iterator[int]:
    """socket-proxy as compose/docker-api.yaml runs it, in front of the engine's socket or of the one in
    `socket_dir`; yields its port on 127.0.0.1."""
    if not docker_cli("image", "ls", "-q", SOCKET_PROXY).strip():
        pytest.fail(f"{SOCKET_PROXY} is missing: docker pull {SOCKET_PROXY}, or on an offline machine "
                    f"../shared/docker-offline/ensure-images {SOCKET_PROXY}")
    service = yaml.safe_load((ROOT / "compose" / "docker-api.yaml").read_text())["services"]["socket-proxy"]
    assert service["image"] == SOCKET_PROXY
    args = ["-allowfrom=0.0.0.0/0" if arg.startswith("-allowfrom=") else arg for arg in service["command"]]
    folders = ",".join((config.data_dir, config.results_dir, config.models_dir))
    engine = (["--user", f"65534:{os.stat('/var/run/docker.sock').st_gid}",
               "-v", "/var/run/docker.sock:/var/run/docker.sock:ro"] if socket_dir is None else
              ["--user", "65534:65534", "-v", f"{socket_dir}:/engine"])
    docker_cli("run", "-d", "--name", name, *engine, "--read-only", "--cap-drop", "ALL", "-p", "127.0.0.1::2375",
               "-e", f"SP_ALLOWBINDMOUNTFROM={folders}", SOCKET_PROXY, *args,
               *(["-socketpath=/engine/docker.sock"] if socket_dir else []))
    try:
        port = int(docker_cli("port", name, "2375").split(":")[-1])
        deadline = time.monotonic() + 30
        while not direct(port, "GET", "/version").startswith(b"HTTP/1.1 200"):
            assert time.monotonic() < deadline, docker_cli("logs", name)
            time.sleep(0.5)
        yield port
    finally:
        docker_cli("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def socket_proxy(config: Config) -> Iterator[int]:
    with socket_proxy_container(f"{PREFIX}-socket-proxy", config) as port:
        yield port


@pytest.fixture(scope="module")
def gateway(socket_proxy: int, config: Config) -> Iterator[int]:
    with running_gateway(socket_proxy, config) as port:
        yield port


def test_a_runner_runs_through_the_gateway_and_socket_proxy_as_checked(gateway, config):
    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{gateway}", version="auto", timeout=60)
    assert client.ping() and client.images(name=IMAGE)
    host = client.create_host_config(
        auto_remove=False, network_mode=config.network, cpu_shares=1024, port_bindings={}, mem_limit=config.max_memory,
        privileged=False, log_config=LogConfig(config={"max-size": "1m", "max-file": "1"}), nano_cpus=10**9,
        memswap_limit=config.max_memory, read_only=True, tmpfs={"/tmp": "size=16m"}, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], pids_limit=64, mounts=[
            Mount("/data", config.data_dir, type="bind", read_only=True),
            Mount("/results", config.results_dir, type="bind"),
            Mount("/models", config.models_dir, type="bind", read_only=True)])
    created = client.create_container(
        IMAGE, ["python", "-c", "import os; print('through both', os.getuid(), os.getgid())"], name=f"{PREFIX}-runner",
        user=config.user, host_config=host, ports=[], environment={"STATSD_PORT": "9125"},
        labels={"helical.dag_id": "gateway-test", PROBE_LABEL: NONCE})
    stream = client.attach(created["Id"], stdout=True, stderr=True, stream=True)
    client.start(created["Id"])
    assert b"".join(stream).strip().endswith(b"through both 1000 1000")
    assert client.wait(created["Id"])["StatusCode"] == 0
    assert client.logs(created["Id"]).strip().endswith(b"through both 1000 1000")
    recorded = json.loads(docker_cli("inspect", created["Id"]))[0]
    hc = recorded["HostConfig"]
    assert recorded["Config"]["User"] == "1000:1000" and not hc["Privileged"] and hc["ReadonlyRootfs"]
    assert hc["SecurityOpt"] == ["no-new-privileges"] and hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "1", "max-size": "1m"}}
    assert hc["Tmpfs"] == {"/tmp": "size=16m"} and hc["NetworkMode"] == config.network and not hc["GroupAdd"]
    assert hc["MaskedPaths"] and hc["ReadonlyPaths"]  # the engine's defaults, untouched
    assert [(m["Source"], m.get("ReadOnly", False)) for m in hc["Mounts"]] == [
        (config.data_dir, True), (config.results_dir, False), (config.models_dir, True)]
    assert hc["Memory"] == hc["MemorySwap"] == config.max_memory and hc["PidsLimit"] == 64
    client.remove_container(created["Id"])
    assert containers_of_this_run() == []


def hostile_creates(config: Config) -> dict[str, bytes]:
    """One request per class of issue 20 that could create something, each named and labelled for this run."""
    spec = runner_spec(config=config)
    spec["Image"], spec["Labels"][PROBE_LABEL] = IMAGE, NONCE
    body = json.dumps(spec)

    def create(case: str, text: str = body, path: str = "/v1.41/containers/create") -> bytes:
        return http_request("POST", f"{path}?name={PREFIX}-{case}", text.encode())

    root = json.dumps({**spec, "HostConfig": {**spec["HostConfig"], "Privileged": True, "PidMode": "host"}})
    return {
        "percent-encoded path": create("encoded", path="/v1.41/%63ontainers/create"),
        "percent-encoded version": create("version", path="/v1%2E41/containers/create"),
        "absolute-form": create("absolute", path="http://docker/v1.41/containers/create"),
        "smuggled behind a ping": b"GET /v1.41/_ping HTTP/1.1\nHost: docker\n\n" + create("smuggled", root),
        "CL and TE": create("clte").replace(b"Content-Length", b"Transfer-Encoding: chunked\r\nContent-Length"),
        "lower-case privileged": create("lower", body.replace('"HostConfig": {', '"HostConfig": {"privileged": true, ')),
        "User then user 0": create("user", body.replace('"User": "1000:1000"', '"User": "1000:1000", "user": "0"')),
        "uid 0 as 00": create("uid00", body.replace('"User": "1000:1000"', '"User": "00"')),
        "unmasked proc": create("masked", body.replace('"HostConfig": {', '"HostConfig": {"MaskedPaths": [], ')),
        "bind of /": create("bind", body.replace(f'"Source": "{config.data_dir}"', '"Source": "/"')),
        "below results": create("below", body.replace(f'"Source": "{config.results_dir}"',
                                                      f'"Source": "{config.results_dir}/x"')),
        "privileged, host PID": create("root", root),
    }


def test_hostile_requests_create_nothing_on_the_real_engine(gateway, config):
    for case, raw in hostile_creates(config).items():
        status, message = answer_of(exchange(gateway, raw))
        assert status in (400, 403) and message.startswith("docker-policy refused"), (case, status, message)
    assert containers_of_this_run() == []


def test_socket_proxy_refuses_what_the_gateway_would_never_send(socket_proxy, config):
    """The second line on its own: bind sources outside the folders (on versioned and unversioned paths, and
    as a local-driver volume), a container by name, a version out of range."""
    spec = runner_spec(config=config)
    spec["Image"], spec["Labels"][PROBE_LABEL] = IMAGE, NONCE
    outside = json.loads(json.dumps(spec))
    outside["HostConfig"]["Mounts"][0]["Source"] = "/"
    volume = json.loads(json.dumps(spec))
    volume["HostConfig"]["Mounts"][1] = {"Target": "/results", "Type": "volume", "Source": f"{PREFIX}-vol",
                                         "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {
                                             "type": "none", "o": "bind", "device": "/"}}}}
    for target, body in ((f"/v1.41/containers/create?name={PREFIX}-sp1", outside),
                         (f"/containers/create?name={PREFIX}-sp2", outside),
                         (f"/v1.41/containers/create?name={PREFIX}-sp3", volume),
                         (f"/v1.40/containers/create?name={PREFIX}-sp4", spec),
                         (f"/v1.41/containers/{PREFIX}-socket-proxy/stop", None)):
        answer = direct(socket_proxy, "POST", target, json.dumps(body).encode() if body else b"")
        assert answer.startswith(b"HTTP/1.1 403 "), (target, answer[:300])
    assert containers_of_this_run() == []
    assert f"{PREFIX}-vol" not in docker_cli("volume", "ls", "-q")



def test_the_live_suites_probe_gets_the_answers_it_expects(gateway, config, caplog):
    """tests/security/hostile_task_probe.py, which make security runs inside a worker, run here against this
    gateway, socket-proxy and engine: every case answered as it expects, the controls pass, nothing created."""
    caplog.set_level(logging.INFO, logger="docker-policy")
    service = docker_cli("inspect", "-f", "{{.Id}}", f"{PREFIX}-socket-proxy").strip()[:12]
    env = {**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{gateway}", "HOSTNAME": service,
           "HELICAL_DATA_DIR": config.data_dir, "HELICAL_RESULTS_DIR": config.results_dir,
           "HELICAL_MODELS_DIR": config.models_dir, "HELICAL_WORKER_RESULTS_DIR": config.results_dir,
           "HELICAL_DOCKER_NETWORK": config.network, "HELICAL_RUNNER_UID": "1000", "HELICAL_RUNNER_MEMORY": "256m",
           "HELICAL_RUNNER_CPUS": "1", "HELICAL_RUNNER_CPU_IMAGE": IMAGE}
    probe = ROOT / "tests" / "security" / "hostile_task_probe.py"
    done = subprocess.run([sys.executable, str(probe), NONCE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert unexpected_answers(report) == {}
    assert {case["class"] for case in report["cases"].values()} == {1, 2, 3, 4, 5, 6}
    assert report["controls"]["create"] == 201 and report["controls"]["remove"] == 204
    assert f"DELETE {report['api']}/containers/{report['controls']['id']}?force=1 from" in caplog.text
    assert docker_cli("ps", "-aq", "--filter", f"name=hx-hostile-{NONCE}") == ""
    assert containers_of_this_run() == [] and not list(Path(config.results_dir).iterdir())


def test_socket_proxy_hands_on_the_gateways_request_line_and_body_unchanged(config, tmp_path_factory):
    """socket-proxy in front of the recording engine on a unix socket, as in front of dockerd: the request line
    and the body the engine reads are the gateway's, byte for byte; nothing of the client's head gets there."""
    socket_dir = tmp_path_factory.mktemp("engine")
    socket_dir.chmod(0o755)
    with running_engine(str(socket_dir / "docker.sock")) as (engine, _):
        (socket_dir / "docker.sock").chmod(0o666)
        runner = engine.add("r1", {"helical.dag_id": "gateway-test"})
        spec = runner_spec(config=config)
        spec["Image"] = IMAGE
        with socket_proxy_container(f"{PREFIX}-recorded", config, socket_dir) as proxy, \
                running_gateway(proxy, config) as port:
            create = http_request("POST", f"/v1.41/containers/create?name={PREFIX}-recorded-runner",
                                  json.dumps(spec, indent=2).encode(), headers="Host: evil\r\nX-Client: 1\r\n")
            assert answer_of(exchange(port, create))[0] == 201
            assert answer_of(exchange(port, http_request("POST", "/v1.41/containers/r1/stop?t=5")))[0] == 204
    received = {raw.split(b"\r\n", 1)[0]: raw.partition(b"\r\n\r\n")[2] for raw in engine.received}
    line = f"POST /v1.41/containers/create?name={PREFIX}-recorded-runner HTTP/1.1".encode()
    assert received[line] == strict_json.encode(canonical_spec(spec, config))
    assert f"POST /v1.41/containers/{runner.id}/stop?t=5 HTTP/1.1".encode() in received
    assert b"X-Client" not in b"".join(engine.received) and b"evil" not in b"".join(engine.received)
