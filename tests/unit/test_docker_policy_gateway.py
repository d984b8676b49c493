"""docker-policy end to end against the recording engine: what it forwards for calls on containers (issue 20,
class 6: forwarded by the full ID it checked), for lists, and for creates; and docker-py's own requests, as
RunnerOperator makes them, through it."""

from __future__ import annotations

import functools
import json
import socket

import docker
import h11
import pytest
from docker.types import DeviceRequest, LogConfig, Mount

from docker_policy import strict_json
from tests.gateway_harness import (
    ATTACH_OUTPUT,
    CONFIG,
    answer_of,
    exchange,
    http_request,
    runner_spec,
    running_engine,
    running_gateway,
)

RUNNER_LABELS = {"helical.dag_id": "helical_model_workflow"}


@pytest.fixture
def gateway():
    with running_engine() as (engine, engine_port), running_gateway(engine_port) as port:
        yield engine, port


def forwarded(raw: bytes) -> tuple[h11.Request, bytes]:
    """A request the engine received, parsed again by h11: it must be one complete, canonical request."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(raw)
    request = connection.next_event()
    body = b""
    while not isinstance(event := connection.next_event(), h11.EndOfMessage):
        body += event.data
    # Connection: close, and not one byte after the message.
    assert isinstance(request, h11.Request) and connection.next_event() is h11.NEED_DATA
    assert connection.trailing_data == (b"", False) and connection.their_state is h11.MUST_CLOSE
    return request, body


def test_a_call_on_a_runner_is_forwarded_by_the_full_id_the_gateway_checked(gateway):
    engine, port = gateway
    runner = engine.add("helical_model_workflow.embed.r.0.try1", RUNNER_LABELS)
    for ref in (runner.name, runner.id[:12], runner.id):
        engine.received.clear()
        status, _ = answer_of(exchange(port, http_request("POST", f"/v1.41/containers/{ref}/stop?t=10")))
        assert status == 204
        assert engine.received == [
            f"GET /v1.41/containers/{ref}/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode(),
            f"POST /v1.41/containers/{runner.id}/stop?t=10 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
            f"Content-Length: 0\r\n\r\n".encode()]


def test_a_prefix_that_changes_meaning_between_check_and_call_cannot_redirect_it(gateway):
    """The race of issue 20: a runner named by a prefix of another container's ID, removed in between."""
    engine, port = gateway
    service = engine.add("helical-postgres-1", {"com.docker.compose.service": "postgres"}, "ab12" + "0" * 60)
    runner = engine.add("helical_model_workflow.x", RUNNER_LABELS, "ab12" + "f" * 60)
    answer = engine.answer

    def remove_runner_after_its_check(request, sock):
        reply = answer(request, sock)
        if b"/json " in request:
            engine.containers.remove(runner)  # "ab12" now names the service alone
        return reply

    engine.answer = remove_runner_after_its_check
    status, message = answer_of(exchange(port, http_request("DELETE", "/v1.41/containers/ab12ffff?force=1")))
    assert status == 404 and "No such container" in message  # the runner is gone; the service is untouched
    assert engine.received[-1].startswith(f"DELETE /v1.41/containers/{runner.id}?force=1 HTTP/1.1\r\n".encode())
    assert service in engine.containers


@pytest.mark.parametrize(("method", "target"), [
    ("GET", "/v1.41/containers/helical-postgres-1/json"), ("GET", "/v1.41/containers/helical-postgres-1/logs?stdout=1"),
    ("POST", "/v1.41/containers/cd34/stop"), ("DELETE", "/v1.41/containers/helical-postgres-1?force=1"),
    ("POST", "/v1.41/containers/helical-postgres-1/attach?stream=1&stdout=1"),
    ("POST", "/v1.41/containers/helical-postgres-1/wait"), ("POST", "/v1.41/containers/cd34/start"),
])
def test_calls_on_a_container_without_the_runner_label_stop_at_the_check(gateway, method, target):
    engine, port = gateway
    engine.add("helical-postgres-1", {"com.docker.compose.service": "postgres"}, "cd34" + "1" * 60)
    status, message = answer_of(exchange(port, http_request(method, target)))
    assert status == 403 and "is not a runner container (no label helical.dag_id)" in message, message
    assert [raw.split(b" ")[0] for raw in engine.received] == [b"GET"]  # the inspect, nothing else


def test_a_runner_name_made_of_hex_digits_alone_is_refused(gateway):
    engine, port = gateway
    spec = json.dumps(runner_spec()).encode()
    status, message = answer_of(exchange(port, http_request("POST", "/v1.41/containers/create?name=cd34", spec)))
    assert status == 403 and "not only hex digits" in message and engine.received == []


def test_a_create_is_forwarded_as_the_canonical_spec(gateway):
    engine, port = gateway
    spec = runner_spec(gpu_id="1")
    raw = json.dumps(spec, indent=3).encode()  # the client's spacing and order are not what is forwarded
    status, _ = answer_of(exchange(port, http_request("POST", "/v1.41/containers/create?name=helical.r.0", raw)))
    assert status == 201
    (sent,) = engine.received
    request, body = forwarded(sent)
    assert request.target == b"/v1.41/containers/create?name=helical.r.0"
    assert json.loads(body)["HostConfig"]["LogConfig"]["Type"] == "json-file"
    expected = {**spec, "HostConfig": {**spec["HostConfig"], "LogConfig": {"Type": "json-file", "Config": {
        "max-size": "10m", "max-file": "2"}}}}
    assert body == strict_json.encode(expected)
    assert engine.containers[-1].labels == spec["Labels"]


def test_refused_creates_never_reach_the_engine(gateway):
    engine, port = gateway
    for body in (b'{"Image": "alpine", "HostConfig": {"Privileged": true}}', b"[]", b"not json", b""):
        status, message = answer_of(exchange(port, http_request("POST", "/v1.41/containers/create", body)))
        assert status in (400, 403) and message.startswith("docker-policy refused POST /v1.41/containers/create: ")
    assert engine.received == []


def test_lists_show_runners_and_runner_images_only(gateway):
    engine, port = gateway
    engine.add("helical-postgres-1", {"com.docker.compose.service": "postgres"})
    runner = engine.add("r1", RUNNER_LABELS)
    listed = json.loads(exchange(port, http_request("GET", "/v1.41/containers/json?all=1")).partition(b"\r\n\r\n")[2])
    assert [c["Id"] for c in listed] == [runner.id]
    assert engine.received[-1].startswith(b"GET /v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22helical"
                                          b".dag_id%22%5D%7D HTTP/1.1\r\n")
    for query, reason in (("filters=%7B%22name%22%3A%5B%22postgres%22%5D%7D", "allowed filters are label, status"),
                          ("filters=%7B%22label%22%3A%7B%22a%22%3Atrue%7D%7D", "allowed filters are"),
                          ("limit=99999999999", "is not an integer from -1 to 10000")):
        status, message = answer_of(exchange(port, http_request("GET", f"/v1.41/containers/json?{query}")))
        assert status == 403 and reason in message, message
    for query, reason in (("", "must filter by reference to a runner image"),
                          ("filters=%7B%22reference%22%3A%5B%22postgres%3A16%22%5D%7D", "allowed filters are"),
                          ("filters=%7B%22dangling%22%3A%5B%22true%22%5D%7D", "allowed filters are")):
        status, message = answer_of(exchange(port, http_request("GET", f"/v1.41/images/json?{query}")))
        assert status == 403 and reason in message, message


def test_an_attach_streams_the_containers_output_and_forwards_nothing_of_the_client(gateway):
    engine, port = gateway
    runner = engine.add("r1", RUNNER_LABELS)
    runner.started.set()
    raw = http_request("POST", f"/v1.41/containers/{runner.id}/attach?stream=1&stdout=1&stderr=1",
                       headers="Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n") + b"stdin bytes\r\n\r\n"
    answer = exchange(port, raw)
    assert answer.startswith(b"HTTP/1.1 101 UPGRADED\r\n") and answer.endswith(ATTACH_OUTPUT)
    assert engine.received[-1] == (f"POST /v1.41/containers/{runner.id}/attach?stdout=1&stderr=1&stream=1 HTTP/1.1"
                                   "\r\nHost: docker\r\nConnection: Upgrade, close\r\nUpgrade: tcp\r\n"
                                   "Content-Length: 0\r\n\r\n").encode()


# What the DockerOperator (apache-airflow-providers-docker 4.6.1, DockerOperator._run_image_with_mounts) passes
# to docker-py, with RunnerOperator's settings (dags/helical_workflow/operator.py); tests/dags runs the real one.
def runner_host_config(client: docker.APIClient, device_requests: list | None) -> dict:
    lockdown = functools.partial(client.create_host_config, nano_cpus=10**9, memswap_limit="4g", read_only=True,
                                 tmpfs={"/tmp": "size=2g"}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
                                 pids_limit=512)
    return lockdown(auto_remove=False, mounts=[
        Mount(target="/data", source=CONFIG.data_dir, type="bind", read_only=True),
        Mount(target="/results", source=CONFIG.results_dir, type="bind"),
        Mount(target="/models", source=CONFIG.models_dir, type="bind", read_only=True)],
        network_mode=CONFIG.network, shm_size=None, dns=None, dns_search=None, cpu_shares=1024, port_bindings={},
        mem_limit="4g", cap_add=None, extra_hosts=None, privileged=False, device_requests=device_requests,
        log_config=LogConfig(config={"max-size": "10m", "max-file": "2"}), ipc_mode=None, ulimits=[])


@pytest.mark.parametrize(("image", "device_requests"), [
    ("helical-runner:cpu", None),  # the CPU queue, and the gpu-test worker (the CPU image, no device)
    ("helical-runner:gpu", [DeviceRequest(device_ids=["0"], capabilities=[["gpu"]])]),
    ("helical-runner:gpu", [DeviceRequest(device_ids=["GPU-5c5b8b4e-1d2a-4b3c-9d8e-7f6a5b4c3d2e"],
                                          capabilities=[["gpu"]])]),
])
def test_docker_py_runs_a_runner_through_the_gateway(gateway, image, device_requests):
    """Every call of a runner task, serialised by docker-py itself: ping, image check, the earlier try's runner
    found and stopped, create, attach, start, wait, logs, the OOM inspect, remove."""
    engine, port = gateway
    earlier = engine.add("helical_model_workflow.embed.r.0.try1", {**RUNNER_LABELS, "helical.task_id": "embed"})
    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{port}", version="auto", timeout=10)
    assert client.ping() and client.images(name=image)
    running = client.containers(filters={"label": ["helical.dag_id=helical_model_workflow",
                                                   "helical.task_id=embed"], "status": "running"})
    assert [c["Id"] for c in running] == [earlier.id]
    client.stop(running[0]["Id"], timeout=10)
    created = client.create_container(
        command=["helical-runner", "run", "--data", "/data/a.h5ad"], name="helical_model_workflow.embed.r.0.try2",
        environment={"STATSD_HOST": "statsd-exporter", "STATSD_PORT": "9125"}, ports=[],
        host_config=runner_host_config(client, device_requests), image=image, user="1000:1000", entrypoint=None,
        working_dir=None, tty=False, hostname=None, labels={**RUNNER_LABELS, "helical.task_id": "embed"})
    stream = client.attach(container=created["Id"], stdout=True, stderr=True, stream=True)
    client.start(created["Id"])
    assert b"".join(stream) == b"hello\n"
    engine.exit_code, engine.oom_killed = 137, True
    assert client.wait(created["Id"])["StatusCode"] == 137
    assert client.inspect_container(created["Id"])["State"]["OOMKilled"]
    assert client.logs(created["Id"]) == b"hello\n"
    client.remove_container(created["Id"])
    client.stop(created["Id"])  # on_kill
    (create,) = [raw for raw in engine.received if b"/containers/create" in raw]
    assert json.loads(forwarded(create)[1])["HostConfig"].get("DeviceRequests") == (
        [dict(request) for request in device_requests] if device_requests else None)


def test_an_unreachable_socket_proxy_is_a_502_naming_it():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there
        with running_gateway(port) as gateway_port:
            for raw in (http_request("GET", "/v1.41/_ping"), http_request("POST", "/v1.41/containers/r1/start")):
                status, message = answer_of(exchange(gateway_port, raw))
                assert status == 502 and ("socket-proxy is unreachable" in message
                                          or "the engine could not be asked about r1" in message), message


def test_a_runner_with_a_large_pack_of_datasets_passes(gateway):
    engine, port = gateway
    spec = runner_spec()
    paths = [f"/data/lab/plate_{i:05d}/sample.h5ad" for i in range(10000)]
    spec["Cmd"] += [arg for path in paths for arg in ("--data", path, "--name", path[6:-5].replace("/", "__"))]
    spec["Labels"]["helical.dataset"] = ",".join(paths)
    status, _ = answer_of(exchange(port, http_request("POST", "/v1.41/containers/create", json.dumps(spec).encode())))
    assert status == 201 and len(engine.received[-1]) > 1 << 20
