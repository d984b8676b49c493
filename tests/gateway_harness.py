"""The gateway (compose/docker-policy) running for real on a loopback port, in front of a recording engine.

The recording engine is what the tests observe: it keeps the exact bytes of every request the gateway sends
and answers as dockerd would for the few calls a runner makes (containers resolved by full ID, then name, then
unique ID prefix, as moby's daemon.GetContainer does). Nothing of the gateway is replaced.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from docker_policy.config import Config
from docker_policy.http_wire import MAX_HEAD
from docker_policy.server import Gateway

CONFIG = Config(images=frozenset({"helical-runner:cpu", "helical-runner:gpu"}), network="helical_runners",
                label="helical.dag_id", user="1000:1000", data_dir="/srv/helical/data",
                results_dir="/srv/helical/results", models_dir="/srv/helical/models", max_memory=4 << 30,
                max_nano_cpus=10**9)
ATTACH_OUTPUT = b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"


@dataclass
class Container:
    id: str
    name: str
    labels: dict[str, str]
    started: threading.Event = field(default_factory=threading.Event)


@dataclass
class RecordingEngine:
    """Containers it knows, the raw requests it received in order, and what its next wait answers."""

    containers: list[Container] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    exit_code: int = 0
    oom_killed: bool = False

    def add(self, name: str, labels: dict[str, str], container_id: str | None = None) -> Container:
        container = Container(container_id or secrets.token_hex(32), name, labels)
        self.containers.append(container)
        return container

    def find(self, ref: str) -> Container | None:
        exact = [c for c in self.containers if ref in (c.id, c.name)]
        prefixed = [c for c in self.containers if c.id.startswith(ref)]
        return exact[0] if exact else prefixed[0] if len(prefixed) == 1 else None

    def answer(self, request: bytes, sock: socket.socket) -> bytes:
        method, target = request.split(b" ", 2)[:2]
        path = target.decode().partition("?")[0].split("/")[2:]  # /v1.41/containers/x/json -> [containers, x, json]
        if target == b"/version" or path == ["version"]:
            return reply(200, {"ApiVersion": "1.41", "Version": "20.10.24"})
        query = parse_qs(target.decode().partition("?")[2])
        if path[:2] == ["containers", "create"]:
            spec = json.loads(request.partition(b"\r\n\r\n")[2])
            name = query.get("name", [secrets.token_hex(4) + "_runner"])[0]
            return reply(201, {"Id": self.add(name, spec.get("Labels") or {}).id, "Warnings": []})
        if path == ["containers", "json"]:
            wanted = json.loads(query["filters"][0])["label"]
            return reply(200, [{"Id": c.id, "Names": ["/" + c.name], "Labels": c.labels} for c in self.containers
                               if all(has_label(c.labels, term) for term in wanted)])
        if path == ["images", "json"]:
            return reply(200, [{"Id": "sha256:" + "0" * 64, "RepoTags": json.loads(query["filters"][0])["reference"]}])
        if path[:1] == ["containers"] and len(path) >= 2 and path[1] != "json":
            container = self.find(path[1])
            if container is None:
                return reply(404, {"message": f"No such container: {path[1]}"})
            action = path[2] if len(path) > 2 else method.decode()
            if action == "json":
                return reply(200, {"Id": container.id, "Name": "/" + container.name,
                                   "Config": {"Labels": container.labels, "Tty": False},
                                   "State": {"OOMKilled": self.oom_killed}})
            if action == "start":
                container.started.set()
            if action == "attach":  # the head now, the output once the container runs, as from dockerd
                sock.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                             b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                container.started.wait(5)
                return ATTACH_OUTPUT
            if action == "wait":
                return reply(200, {"StatusCode": self.exit_code})
            if action == "logs":
                return b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n" \
                    + ATTACH_OUTPUT
            return b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        if path == ["_ping"]:
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
        return reply(200, [])


def has_label(labels: dict[str, str], term: str) -> bool:
    key, equals, value = term.partition("=")
    return key in labels and (not equals or labels[key] == value)


def reply(status: int, body: object) -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n").encode() + data


def read_one_request(sock: socket.socket) -> bytes:
    """A whole request as the gateway framed it: head, then Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def running_engine(unix_socket: str | None = None) -> Iterator[tuple[RecordingEngine, int]]:
    """The recording engine on a loopback port (yielded), or on a unix socket as dockerd (port 0)."""
    engine = RecordingEngine()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            request = read_one_request(self.request)
            if not request:  # a client checking that the engine is there (socket-proxy at start)
                return
            engine.received.append(request)
            self.request.sendall(engine.answer(request, self.request))

    server: socketserver.ThreadingMixIn = (socketserver.ThreadingUnixStreamServer(unix_socket, Handler) if unix_socket
                                           else socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield engine, 0 if unix_socket else server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_gateway(upstream_port: int, config: Config = CONFIG) -> Iterator[int]:
    """The gateway's server loop on its own event loop thread; yields its port."""
    loop = asyncio.new_event_loop()
    gateway = Gateway(config, "127.0.0.1", upstream_port)
    server = loop.run_until_complete(asyncio.start_server(gateway.handle, "127.0.0.1", 0, limit=MAX_HEAD))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(stop_serving(server), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def stop_serving(server: asyncio.Server) -> None:
    """Close the server and end the connections it still serves (a client that left a stream open)."""
    server.close()
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes to the gateway and read its whole answer (it closes after one request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def runner_spec(gpu_id: str | None = None, config: Config = CONFIG) -> dict:
    """A create body as docker-py 7.2 writes it for RunnerOperator (captured from the DockerOperator's call)."""
    host = {
        "Memory": config.max_memory, "MemorySwap": config.max_memory, "ReadonlyRootfs": True,
        "NetworkMode": config.network,
        "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"], "PortBindings": {}, "Ulimits": [],
        "LogConfig": {"Type": None, "Config": {"max-size": "10m", "max-file": "2"}}, "CpuShares": 1024,
        "Tmpfs": {"/tmp": "size=64m"}, "PidsLimit": 512, "NanoCpus": config.max_nano_cpus,
        "Mounts": [{"Target": "/data", "Source": config.data_dir, "Type": "bind", "ReadOnly": True},
                   {"Target": "/results", "Source": config.results_dir, "Type": "bind", "ReadOnly": False},
                   {"Target": "/models", "Source": config.models_dir, "Type": "bind", "ReadOnly": True}],
    }
    if gpu_id is not None:
        host["DeviceRequests"] = [{"Driver": "", "Count": 0, "DeviceIDs": [gpu_id], "Capabilities": [["gpu"]],
                                   "Options": {}}]
    return {"ExposedPorts": {}, "User": config.user, "Tty": False, "OpenStdin": False, "StdinOnce": False,
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
            "Env": ["STATSD_HOST=statsd-exporter", "STATSD_PORT=9125"], "Cmd": ["helical-runner", "run"],
            "Image": "helical-runner:gpu" if gpu_id is not None else "helical-runner:cpu", "NetworkDisabled": False,
            "HostConfig": host, "Labels": {"helical.dag_id": "helical_model_workflow", "helical.task_id": "t"}}


def http_request(method: str, target: str, body: bytes = b"", headers: str = "Host: docker\r\n") -> bytes:
    """A well-formed request as a client writes it."""
    length = f"Content-Length: {len(body)}\r\n" if body or method != "GET" else ""
    return f"{method} {target} HTTP/1.1\r\n{headers}{length}\r\n".encode() + body


def answer_of(raw: bytes) -> tuple[int, str]:
    """The status and the Docker-style message of the gateway's answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body).get("message", "") if body.startswith(b"{") else body.decode(errors="replace")


def unexpected_answers(report: dict) -> dict[str, dict]:
    """The cases of tests/security/hostile_task_probe.py's report not answered as each expects."""
    return {name: case for name, case in report["cases"].items()
            if case["status"] != case["expect"][0] or case["expect"][1] not in case["message"]}
