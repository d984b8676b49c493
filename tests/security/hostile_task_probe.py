"""A hostile task's requests to the Docker API (issue 20, classes 1-6), sent as raw bytes from inside a Celery
worker: `docker exec -i WORKER python - NONCE < this file` (tests/security/test_hostile_task.py), or from this
host against a throw-away gateway (tests/gateway).

Every request that could create something names its container hx-hostile-NONCE-<case> and labels it
helical.probe=NONCE, so the caller can ask the engine whether anything was created. Prints one JSON object:
{"cases": {case: {"class": n, "status": s, "message": m, "expect": [status, reason]}}, "controls": {...}}.
The controls (a runner create and remove, by name) must pass: they show the refusals are for their reasons.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from docker.utils import parse_bytes

NONCE = sys.argv[1]
PREFIX = f"hx-hostile-{NONCE}"
GATEWAY = urlparse(os.environ["DOCKER_HOST"])
# The worker's own container: it stands for every container of the stack that is not a runner.
SERVICE = os.environ["HOSTNAME"]
DATA, RESULTS, MODELS = (os.environ[f"HELICAL_{name}_DIR"] for name in ("DATA", "RESULTS", "MODELS"))
UID = os.environ.get("HELICAL_RUNNER_UID", "1000")
MEMORY = min(256 << 20, parse_bytes(os.environ.get("HELICAL_RUNNER_MEMORY") or "4g"))
# Where this worker sees the results folder (compose mounts HELICAL_RESULTS_DIR there).
WORKER_RESULTS = Path(os.environ.get("HELICAL_WORKER_RESULTS_DIR", "/opt/airflow/results"))


def runner_spec(**host: object) -> dict:
    """The locked-down runner RunnerOperator asks for, with `host` changing its HostConfig."""
    return {
        "Image": os.environ.get("HELICAL_RUNNER_CPU_IMAGE", "helical-runner:cpu"), "User": f"{UID}:{UID}",
        "Cmd": ["true"], "Labels": {"helical.dag_id": "security", "helical.probe": NONCE},
        "HostConfig": {
            "NetworkMode": os.environ["HELICAL_DOCKER_NETWORK"], "Memory": MEMORY, "MemorySwap": MEMORY,
            "NanoCpus": int(float(os.environ.get("HELICAL_RUNNER_CPUS") or 1) * 1e9), "PidsLimit": 64,
            "ReadonlyRootfs": True, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "Tmpfs": {"/tmp": "size=16m"}, "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m",
                                                                                          "max-file": "1"}},
            "Mounts": [{"Target": "/data", "Source": DATA, "Type": "bind", "ReadOnly": True},
                       {"Target": "/results", "Source": RESULTS, "Type": "bind", "ReadOnly": False},
                       {"Target": "/models", "Source": MODELS, "Type": "bind", "ReadOnly": True}],
            **host,
        },
    }


# A runner the gateway accepts (the control below creates one): hidden behind another request or sent on an
# encoded path, it would be created if anything but the gateway's own request reached the engine.
SPEC = json.dumps(runner_spec())


def request(method: str, target: str, body: str = "") -> bytes:
    data = body.encode()
    framing = f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n" if method != "GET" else ""
    return f"{method} {target} HTTP/1.1\r\nHost: docker\r\n{framing}\r\n".encode() + data


def create(case: str, body: str = SPEC, path: str | None = None) -> bytes:
    return request("POST", f"{path or API + '/containers/create'}?name={PREFIX}-{case}", body)


def exchange(raw: bytes) -> bytes:
    """The gateway's whole answer to raw bytes (it answers one request and closes)."""
    with socket.create_connection((GATEWAY.hostname, GATEWAY.port), timeout=60) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


class Answer:
    """Raw answer bytes as http.client reads a socket, so chunked bodies (dockerd's) are decoded too."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, *_args: object, **_kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.raw)


def answer(raw: bytes) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(Answer(exchange(raw)))  # type: ignore[arg-type]
    response.begin()
    return response.status, response.read()


def send(raw: bytes) -> tuple[int, str]:
    """The status and the message (Docker's error format) of the gateway's answer."""
    status, body = answer(raw)
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")[:300]
    return status, message


# The engine's API version, as docker-py's version="auto" asks it (unversioned GET /version).
API = "/v" + json.loads(answer(request("GET", "/version"))[1])["ApiVersion"]


def spec_with(old: str, new: str) -> str:
    assert old in SPEC, old
    return SPEC.replace(old, new, 1)


def host_with(**host: object) -> str:
    return json.dumps(runner_spec(**host))


def mount(index: int, **changes: object) -> str:
    spec = runner_spec()
    spec["HostConfig"]["Mounts"][index] |= changes
    return json.dumps(spec)


NOT_A_SETTING = "is not a setting a runner uses"
SYMLINK = f"{PREFIX}-link"
CASES: list[tuple[str, int, bytes, int, str]] = [
    # 1. Path forms dockerd decodes, or reads as another path.
    ("encoded segment", 1, create("c1a", path=f"{API}/%63ontainers/create"), 400, "no '%' escapes"),
    ("encoded version", 1, create("c1b", path="/v1%2E41/containers/create"), 400, "no '%' escapes"),
    ("encoded slash", 1, create("c1c", path=f"{API}/containers%2Fcreate"), 400, "no '%' escapes"),
    ("absolute-form", 1, create("c1d", path="http://docker-policy:2375/v1.41/containers/create"), 400,
     "only origin-form targets"),
    ("unversioned", 1, create("c1e", path="/containers/create"), 403, "must name the API version"),
    ("old version", 1, create("c1f", path="/v1.24/containers/create"), 403, "API version '1.24'"),
    ("encoded service id", 1, request("GET", f"{API}/containers/%{ord(SERVICE[0]):02x}{SERVICE[1:]}/json"), 400,
     "no '%' escapes"),
    ("absolute-form stop", 1, request("POST", f"http://x/v1.41/containers/{SERVICE}/stop"), 400,
     "only origin-form targets"),
    ("unversioned remove", 1, request("DELETE", f"/containers/{SERVICE}?force=1"), 403, "must name the API version"),
    ("exec", 1, request("POST", f"{API}/containers/{SERVICE}/exec", '{"Cmd": ["id"]}'), 403,
     "is not a call a runner task makes"),
    ("image pull", 1, request("POST", f"{API}/images/create?fromImage=alpine&tag=3"), 403,
     "is not a call a runner task makes"),
    ("volume create", 1, request("POST", f"{API}/volumes/create", json.dumps({"Name": f"{PREFIX}-vol"})), 403,
     "is not a call a runner task makes"),
    # 2. A create hidden behind an allowed ping, and framing two readers could disagree on.
    ("bare LF headers", 2, b"GET /v1.41/_ping HTTP/1.1\nHost: docker\n\n" + create("c2a"), 400,
     "bare CR or LF"),
    ("bare LF request line", 2, b"GET /v1.41/_ping\n" + create("c2b"), 400, "bare CR or LF"),
    ("bare CR", 2, b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\rX: y\r\n\r\n" + create("c2c"), 400,
     "bare CR or LF"),
    ("CL and TE", 2, create("c2d").replace(b"Content-Length:", b"Transfer-Encoding: chunked\r\n"
                                                                          b"Content-Length:"), 400,
     "Transfer-Encoding is refused"),
    ("two Content-Lengths", 2, create("c2e").replace(b"Content-Length:", b"Content-Length: 2\r\n"
                                                                                    b"Content-Length:"), 400,
     "Content-Length must appear once"),
    ("obs-fold", 2, create("c2f").replace(b"Host: docker\r\n", b"Host: docker\r\nX: a\r\n b\r\n"), 400,
     "folded"),
    ("HTTP/1.0", 2, create("c2g").replace(b"HTTP/1.1", b"HTTP/1.0"), 400, "HTTP/1.0 is refused"),
    ("pipelined after a ping", 2, request("GET", f"{API}/_ping") + create("c2h"), 200, "OK"),
    # 3. JSON the engine reads differently: case-folded and repeated keys.
    *[(f"lower-case {key}", 3, create(f"c3{key}", spec_with('"HostConfig": {', f'"HostConfig": {{"{key}": {value}, ')),
       403, f"HostConfig.{key} {NOT_A_SETTING}")
      for key, value in (("privileged", "true"), ("capadd", '["SYS_ADMIN"]'), ("pidmode", '"host"'),
                         ("binds", '["/:/host"]'), ("volumesfrom", f'["{SERVICE}"]'),
                         ("devices", '[{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]'))],
    ("User then user 0", 3, create("c3u", spec_with(f'"User": "{UID}:{UID}"', f'"User": "{UID}:{UID}", "user": "0"')),
     400, "appears twice, as 'User' and 'user'"),
    ("second hostConfig", 3, create("c3h", spec_with('"HostConfig": {', '"hostConfig": {"Privileged": true}, '
                                                                        '"HostConfig": {')), 400, "appears twice"),
    ("duplicate Image", 3, create("c3i", spec_with('"Image": ', '"Image": "alpine", "Image": ')), 400,
     "'Image' appears twice"),
    ("duplicate networkmode", 3, create("c3n", spec_with('"NetworkMode": ', '"networkmode": "host", "NetworkMode": ')),
     400, "as 'networkmode' and 'NetworkMode'"),
    # 4. Values that reach past a runner.
    *[(f"User {user}", 4, create(f"c4u{i}", json.dumps(runner_spec() | {"User": user})), 403,
       "is not the runners' user") for i, user in enumerate(("00", "+0", "0000:0000", "65534:0", "0", UID))],
    ("GroupAdd 0", 4, create("c4g", host_with(GroupAdd=["0"])), 403, f"HostConfig.GroupAdd {NOT_A_SETTING}"),
    ("no-new-privileges=false", 4, create("c4s", host_with(SecurityOpt=["no-new-privileges=false"])), 403,
     "HostConfig.SecurityOpt must be"),
    ("allow-all seccomp", 4, create("c4p", host_with(SecurityOpt=[
        "no-new-privileges", 'seccomp={"defaultAction": "SCMP_ACT_ALLOW"}'])), 403, "HostConfig.SecurityOpt must be"),
    ("label spc_t", 4, create("c4l", host_with(SecurityOpt=["no-new-privileges", "label=type:spc_t"])), 403,
     "HostConfig.SecurityOpt must be"),
    ("MaskedPaths []", 4, create("c4m", host_with(MaskedPaths=[])), 403, f"HostConfig.MaskedPaths {NOT_A_SETTING}"),
    ("ReadonlyPaths []", 4, create("c4r", host_with(ReadonlyPaths=[])), 403,
     f"HostConfig.ReadonlyPaths {NOT_A_SETTING}"),
    ("data read-write", 4, create("c4d", mount(0, ReadOnly=False)), 403, "HostConfig.Mounts has"),
    ("models read-write", 4, create("c4o", mount(2, ReadOnly=False)), 403, "HostConfig.Mounts has"),
    ("gelf logs", 4, create("c4e", host_with(LogConfig={"Type": "gelf", "Config": {
        "gelf-address": "udp://203.0.113.9:12201"}})), 403, "HostConfig.LogConfig must be"),
    ("syslog logs", 4, create("c4y", host_with(LogConfig={"Type": "syslog", "Config": {
        "syslog-address": "tcp://203.0.113.9:514"}})), 403, "HostConfig.LogConfig must be"),
    ("Cgroup of a service", 4, create("c4c", host_with(Cgroup=f"container:{SERVICE}")), 403,
     'HostConfig.Cgroup must be ""'),
    ("endpoint by NetworkID", 4, create("c4n", json.dumps(runner_spec() | {"NetworkingConfig": {"EndpointsConfig": {
        os.environ["HELICAL_DOCKER_NETWORK"]: {"NetworkID": "helical_default"}}}})), 403, "NetworkingConfig must be"),
    ("every GPU", 4, create("c4v", host_with(DeviceRequests=[{"Driver": "", "Count": -1, "DeviceIDs": None,
                                                             "Capabilities": [["gpu"]], "Options": {}}])), 403,
     "HostConfig.DeviceRequests must be one request for one GPU by id"),
    ("privileged, host PID", 4, create("c4x", host_with(Privileged=True, PidMode="host")), 403,
     f"HostConfig.Privileged {NOT_A_SETTING}"),
    # 5. Bind sources: outside the folders, below them (a symlink planted in results/), as volumes.
    ("bind /", 5, create("c5a", mount(0, Source="/")), 403, "HostConfig.Mounts has"),
    ("bind /var/run", 5, create("c5b", mount(0, Source="/var/run")), 403, "HostConfig.Mounts has"),
    ("symlink in results", 5, create("c5c", mount(1, Source=f"{RESULTS}/{SYMLINK}")), 403, "HostConfig.Mounts has"),
    ("Binds", 5, create("c5d", host_with(Binds=["/:/host"])), 403, f"HostConfig.Binds {NOT_A_SETTING}"),
    ("volume bound to /", 5, create("c5e", mount(1, Type="volume", Source=f"{PREFIX}-vol", VolumeOptions={
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}})), 403,
     "HostConfig.Mounts has"),
    ("propagation", 5, create("c5f", mount(1, BindOptions={"Propagation": "rshared"})), 403, "HostConfig.Mounts has"),
    # 6. Names another call could read as an ID prefix; a service by a prefix of its ID.
    ("runner named by a hex prefix", 6, request("POST", f"{API}/containers/create?name={SERVICE[:8]}", SPEC), 403,
     "not only hex digits"),
    ("stop a service by ID prefix", 6, request("POST", f"{API}/containers/{SERVICE[:10]}/stop"), 403,
     "is not a runner container"),
    ("remove a service by name", 6, request("DELETE", f"{API}/containers/{SERVICE}?force=1"), 403,
     "is not a runner container"),
]


def controls() -> dict[str, object]:
    """A runner created, then removed by name through the gateway (which forwards the remove by full ID)."""
    status, _ = send(create("control"))
    created = json.loads(answer(request("GET", f"{API}/containers/{PREFIX}-control/json"))[1])
    removed, _ = send(request("DELETE", f"{API}/containers/{PREFIX}-control?force=1"))
    return {"create": status, "id": created.get("Id"), "remove": removed}


def main() -> None:
    link = WORKER_RESULTS / SYMLINK
    link.symlink_to("/")  # what a compromised task can do: workers write the results folder
    try:
        cases = {}
        for name, klass, raw, status, reason in CASES:
            got, message = send(raw)
            cases[name] = {"class": klass, "status": got, "message": message, "expect": [status, reason]}
    finally:
        link.unlink()
    print(json.dumps({"nonce": NONCE, "api": API, "cases": cases, "controls": controls()}))


if __name__ == "__main__":
    main()
