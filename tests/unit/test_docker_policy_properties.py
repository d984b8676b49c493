"""Properties of docker-policy over generated requests (hypothesis): a runner spec in any spelling is forwarded
as one canonical request that re-parses to exactly the checked object, with a decoded, versioned path; case
changes, duplicate or extra keys, encoded paths and stray line ends are refused; and whatever a mutated spec
carries, nothing outside the runner's allowlist is ever forwarded.

The requests go through the gateway's own reader (http_wire.read_request over a StreamReader) and its
canonical_request, the code the server runs; no socket, so hundreds of examples take seconds.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
from typing import Any

import h11
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from docker_policy import http_wire
from docker_policy.endpoints import API_VERSIONS
from docker_policy.refusal import Refused
from docker_policy.server import Gateway
from tests.gateway_harness import CONFIG

GATEWAY = Gateway(CONFIG, "127.0.0.1", 9)  # creates need no engine: the port is never dialled
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
GPU_IDS = st.one_of(st.integers(0, 999).map(str), st.uuids().map(lambda u: f"GPU-{u}"))


def through_gateway(raw: bytes) -> bytes:
    """What the gateway sends upstream for these client bytes; Refused if nothing."""

    async def run() -> bytes:
        reader = asyncio.StreamReader(limit=http_wire.MAX_HEAD)
        reader.feed_data(raw)
        reader.feed_eof()
        try:
            request = await http_wire.read_request(reader)
        except asyncio.IncompleteReadError as err:  # the server drops such a connection without an answer
            raise Refused("incomplete") from err
        return await GATEWAY.canonical_request(request)

    return asyncio.run(run())


@st.composite
def runner_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs the gateway must accept: every value it allows, every optional key present or not."""
    memory = draw(st.integers(6 << 20, CONFIG.max_memory))
    mounts = [{"Target": "/data", "Source": CONFIG.data_dir, "Type": "bind", "ReadOnly": True},
              {"Target": "/results", "Source": CONFIG.results_dir, "Type": "bind", "ReadOnly": False},
              {"Target": "/models", "Source": CONFIG.models_dir, "Type": "bind", "ReadOnly": True}]
    host = {"NetworkMode": CONFIG.network, "Memory": memory, "MemorySwap": memory,
            "NanoCpus": draw(st.integers(1, CONFIG.max_nano_cpus)), "PidsLimit": draw(st.integers(1, 1024)),
            "ReadonlyRootfs": True, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "Mounts": draw(st.permutations(mounts)), "Tmpfs": {"/tmp": f"size={draw(st.integers(1, 4))}g"},
            "LogConfig": {"Type": draw(st.sampled_from([None, "", "json-file"])),
                          "Config": {"max-size": draw(st.sampled_from(["10m", "1k", "100m"])),
                                     "max-file": str(draw(st.integers(1, 5)))}}}
    optional_host = {"PortBindings": {}, "Ulimits": [], "CpuShares": draw(st.integers(2, 262144)), "IpcMode": "", "PidMode": "",
                     "DeviceRequests": [{"Driver": draw(st.sampled_from(["", "nvidia"])), "Count": 0,
                                         "DeviceIDs": [draw(GPU_IDS)], "Capabilities": [["gpu"]], "Options": {}}]}
    host.update({key: value for key, value in optional_host.items() if draw(st.booleans())})
    labels = {CONFIG.label: draw(LABEL_TEXT),
              **draw(st.dictionaries(st.from_regex(r"helical\.[a-z_]{1,12}", fullmatch=True), LABEL_TEXT, max_size=4))}
    spec = {"Image": draw(st.sampled_from(sorted(CONFIG.images))), "User": CONFIG.user, "Labels": labels,
            "HostConfig": host, "Cmd": draw(st.lists(LABEL_TEXT, max_size=6))}
    optional = {"Env": draw(st.sampled_from([["STATSD_HOST=statsd-exporter", "STATSD_PORT=9125"],
                                              ["STATSD_PORT=9125"]])),
                "NetworkingConfig": {"EndpointsConfig": {CONFIG.network: {}}}, "ExposedPorts": {}, "Tty": False,
                "OpenStdin": False, "StdinOnce": False, "AttachStdin": False, "AttachStdout": True,
                "AttachStderr": True, "NetworkDisabled": False}
    spec.update({key: value for key, value in optional.items() if draw(st.booleans())})
    return spec


def to_json(value: Any, rng: random.Random, extra: dict[int, list[tuple[str, Any]]] | None = None) -> str:
    """JSON in a random key order and spacing; `extra` adds key/value pairs (duplicates too) to given objects."""
    space = rng.choice(["", " ", "\n  "])
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        items += (extra or {}).get(id(value), [])
        return "{" + ",".join(f"{space}{json.dumps(k)}:{space}{to_json(v, rng, extra)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(to_json(item, rng, extra) for item in value) + "]"
    return json.dumps(value)


def objects(value: Any) -> list[dict[str, Any]]:
    """Every JSON object inside `value`, itself included."""
    found = [value] if isinstance(value, dict) else []
    for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else []:
        found += objects(child)
    return found


def create_request(body: str, rng: random.Random, version: str = "1.41", name: str | None = None) -> bytes:
    """A create as some client might write it: header names in any case, extra headers, the body's length."""
    encoded = body.encode()
    headers = [("Host", "docker"), ("Content-Length", str(len(encoded))), ("Content-Type", "application/json"),
               ("User-Agent", "docker-sdk-python/7.2.0"), ("Accept", "*/*")]
    rng.shuffle(headers)
    head = "".join(f"{rng.choice([n, n.lower(), n.upper()])}:{rng.choice(['', ' '])}{v}\r\n" for n, v in headers)
    query = f"?name={name}" if name else ""
    return f"POST /v{version}/containers/create{query} HTTP/1.1\r\n{head}\r\n".encode() + encoded


def normalised(spec: dict[str, Any]) -> dict[str, Any]:
    """The object the gateway checks and forwards for a valid spec: mounts in one order, json-file logs."""
    expected = copy.deepcopy(spec)
    order = ["/data", "/results", "/models"]
    expected["HostConfig"]["Mounts"].sort(key=lambda mount: order.index(mount["Target"]))
    expected["HostConfig"]["LogConfig"]["Type"] = "json-file"
    return expected


def parsed(forwarded: bytes) -> tuple[h11.Request, bytes]:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(forwarded)
    request, body = connection.next_event(), b""
    while not isinstance(event := connection.next_event(), h11.EndOfMessage):
        body += event.data
    assert connection.next_event() is h11.NEED_DATA and connection.trailing_data == (b"", False)
    return request, body


@SETTINGS
@given(spec=runner_specs(), rng=st.randoms(use_true_random=False), version=st.sampled_from(API_VERSIONS),
       name=st.one_of(st.none(), st.from_regex(r"[g-z][a-z0-9_.-]{1,30}", fullmatch=True)))
def test_a_runner_spec_in_any_spelling_is_forwarded_canonically(spec, rng, version, name):
    forwarded = through_gateway(create_request(to_json(spec, rng), rng, version, name))
    request, body = parsed(forwarded)
    target = request.target.decode()
    assert "%" not in target.partition("?")[0] and target.startswith(f"/v{version}/containers/create")
    assert json.loads(body) == normalised(spec)
    assert body == json.dumps(normalised(spec), sort_keys=True, separators=(",", ":")).encode()
    assert through_gateway(forwarded) == forwarded  # canonical: the gateway's own output is a fixed point


@SETTINGS
@given(spec=runner_specs(), rng=st.randoms(use_true_random=False), data=st.data())
def test_a_key_in_another_case_is_refused_at_every_level(spec, rng, data):
    obj = data.draw(st.sampled_from([o for o in objects(spec) if any(k.swapcase() != k for k in o)]))
    key = data.draw(st.sampled_from(sorted(k for k in obj if k.swapcase() != k)))
    variant = data.draw(st.sampled_from([key.swapcase(), key.lower(), key.upper(), key[0].swapcase() + key[1:]]))
    assume(variant != key)
    keep_both = data.draw(st.booleans())
    if not keep_both:
        obj[variant] = obj.pop(key)
    extra = {id(obj): [(variant, obj[key])]} if keep_both else None
    raw = create_request(to_json(spec, rng, extra), rng)
    try:
        through_gateway(raw)
    except Refused:
        return
    raise AssertionError(f"forwarded with {variant!r} for {key!r}")


@SETTINGS
@given(spec=runner_specs(), rng=st.randoms(use_true_random=False), data=st.data())
def test_a_duplicate_key_is_refused_at_every_level(spec, rng, data):
    obj = data.draw(st.sampled_from([o for o in objects(spec) if o]))
    key = data.draw(st.sampled_from(sorted(obj)))
    duplicate = copy.deepcopy(obj[key]) if data.draw(st.booleans()) else data.draw(st.sampled_from(
        [0, "0", True, None, "host", ["SYS_ADMIN"], {}]))
    try:
        through_gateway(create_request(to_json(spec, rng, {id(obj): [(key, duplicate)]}), rng))
    except Refused as err:
        assert "appears twice" in str(err)
        return
    raise AssertionError(f"forwarded with {key!r} twice")


EXTRA_KEYS = ["Privileged", "CapAdd", "Binds", "VolumesFrom", "GroupAdd", "Devices", "MaskedPaths", "ReadonlyPaths",
              "Runtime", "Sysctls", "CgroupParent", "NetworkID", "Aliases", "BindOptions", "VolumeOptions",
              "Propagation", "DeviceCgroupRules", "Entrypoint", "WorkingDir", "Healthcheck", "Init", "x"]


@SETTINGS
@given(spec=runner_specs(), rng=st.randoms(use_true_random=False), data=st.data())
def test_an_extra_key_anywhere_is_refused(spec, rng, data):
    obj = data.draw(st.sampled_from(objects(spec)))
    key = data.draw(st.sampled_from([k for k in EXTRA_KEYS if k not in obj]))
    value = data.draw(st.sampled_from([True, "host", ["0"], {"a": "b"}, 0, "", [], {}]))
    obj[key] = value
    try:
        through_gateway(create_request(to_json(spec, rng), rng))
    except Refused:
        return
    raise AssertionError(f"forwarded with the extra key {key!r}")


@SETTINGS
@given(spec=runner_specs(), rng=st.randoms(use_true_random=False), data=st.data())
def test_an_encoded_path_or_a_stray_line_end_is_refused(spec, rng, data):
    raw = create_request(to_json(spec, rng), rng)
    head_end = raw.index(b"\r\n\r\n")
    if data.draw(st.booleans()):  # one character of the path percent-encoded
        start = raw.index(b" ") + 1
        at = data.draw(st.integers(start + 1, raw.index(b" ", start) - 1))
        raw = raw[:at] + b"%%%02X" % raw[at] + raw[at + 1:]
    else:  # a bare CR or LF: replacing a CRLF's half, or inserted anywhere in the head
        at = data.draw(st.integers(1, head_end))
        stray = data.draw(st.sampled_from([b"\n", b"\r"]))
        raw = raw[:at] + stray + raw[at + 2:] if raw[at:at + 2] == b"\r\n" else raw[:at] + stray + raw[at:]
    try:
        through_gateway(raw)
    except Refused as err:
        assert err.status == 400 or "incomplete" in str(err)
        return
    raise AssertionError(f"forwarded {raw[:200]!r}")


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
HOST_KEYS = {"NetworkMode", "Memory", "MemorySwap", "NanoCpus", "PidsLimit", "ReadonlyRootfs", "CapDrop",
             "SecurityOpt", "Mounts", "Tmpfs", "LogConfig", "PortBindings", "Ulimits", "CpuShares", "DeviceRequests", "Cgroup",
             "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"}


def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaves(v, (*path, i))] or [path]
    return [path]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=runner_specs(), rng=st.randoms(use_true_random=False), data=st.data())
def test_nothing_outside_the_allowlist_is_ever_forwarded(spec, rng, data):
    """Any leaf of a runner spec replaced by any JSON: refused, or forwarded still inside every bound."""
    path = data.draw(st.sampled_from(leaves(spec)))
    parent = spec
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = data.draw(JSON_VALUES)
    try:
        forwarded = through_gateway(create_request(to_json(spec, rng), rng))
    except Refused:
        return
    sent = json.loads(parsed(forwarded)[1])
    host = sent["HostConfig"]
    assert sent["User"] == CONFIG.user and sent["Image"] in CONFIG.images and CONFIG.label in sent["Labels"]
    assert set(host) <= HOST_KEYS and host["NetworkMode"] == CONFIG.network
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert [(m["Source"], m["ReadOnly"]) for m in host["Mounts"]] == [
        (CONFIG.data_dir, True), (CONFIG.results_dir, False), (CONFIG.models_dir, True)]
    assert all(len(m) == 4 and m["Type"] == "bind" for m in host["Mounts"])
    assert 0 < host["Memory"] == host["MemorySwap"] <= CONFIG.max_memory and 0 < host["NanoCpus"] <= CONFIG.max_nano_cpus
    assert host["LogConfig"]["Type"] == "json-file" and all(host.get(k, "") == "" for k in (
        "Cgroup", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"))
    assert all(re.fullmatch(r"helical\.[a-z0-9_.]+", key) for key in sent["Labels"])
    for request in host.get("DeviceRequests", []):
        assert request["Count"] == 0 and len(request["DeviceIDs"]) == 1 and request["Capabilities"] == [["gpu"]]
    assert set(sent) <= {"Image", "User", "Labels", "HostConfig", "Cmd", "Env", "NetworkingConfig", "ExposedPorts",
                         "NetworkDisabled", "Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout",
                         "AttachStderr"}
    assert sent.get("NetworkingConfig", {"EndpointsConfig": {CONFIG.network: {}}}) == {
        "EndpointsConfig": {CONFIG.network: {}}}
