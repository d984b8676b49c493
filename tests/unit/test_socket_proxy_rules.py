"""socket-proxy's allowlist (compose/docker-api.yaml) against the gateway's table: every request docker-policy
can write passes the second line, and the forms docker-policy never writes (names where it forwards IDs,
unversioned paths, other versions, other endpoints) do not. socket-proxy anchors each regex (^...$) and
matches it on the decoded path; these patterns mean the same in Go's RE2 and Python's re."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from docker_policy.endpoints import API_VERSIONS, ENDPOINTS, Call
from helical_workflow.names import RUNNER_LABEL
from tests.gateway_harness import CONFIG

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose" / "docker-api.yaml").read_text())
PROXY = COMPOSE["services"]["socket-proxy"]
RULES = {arg.split("=", 1)[0].removeprefix("-allow"): re.compile("^" + arg.split("=", 1)[1] + "$")
         for arg in PROXY["command"] if re.match(r"-allow(GET|HEAD|POST|PUT|DELETE|PATCH)=", arg)}
FULL_ID = "0123456789abcdef" * 4


def allowed(method: str, path: str) -> bool:
    return method in RULES and RULES[method].match(path) is not None


@pytest.mark.parametrize("version", [None, *API_VERSIONS])
def test_every_request_the_gateway_writes_passes_socket_proxy(version):
    for endpoint in ENDPOINTS:
        if version is None and not endpoint.unversioned:
            continue
        call = Call(endpoint, version, "helical_model_workflow.embed.r.0.try1" if "{ref}" in endpoint.path else None, ())
        path = call.target(FULL_ID if call.ref else None)
        assert allowed(endpoint.method, path), (endpoint.method, path)
        if call.ref:  # the gateway's own inspect resolves the client's name
            assert allowed("GET", call.inspect_target())


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/containers/create"),  # unversioned
    ("POST", "/v1.40/containers/create"), ("POST", "/v1.53/containers/create"), ("POST", "/v1.041/containers/create"),
    ("POST", f"/v1.41/containers/{FULL_ID[:12]}/start"),  # a prefix, not the full ID
    ("POST", "/v1.41/containers/helical-postgres-1/stop"), ("DELETE", "/v1.41/containers/helical-postgres-1"),
    ("GET", "/v1.41/containers/helical-postgres-1/logs"),
    ("POST", f"/v1.41/containers/{FULL_ID}/exec"), ("POST", "/v1.41/exec/x/start"), ("POST", "/v1.41/images/create"),
    ("POST", "/v1.41/volumes/create"), ("POST", "/v1.41/networks/create"), ("POST", "/v1.41/build"),
    ("GET", "/versionx"), ("GET", "/x/v1.41/_ping"), ("GET", "/v1.41/_ping/x"), ("HEAD", "/_ping"),
    ("PUT", f"/v1.41/containers/{FULL_ID}/archive"), ("POST", f"/v1.41/containers/{FULL_ID}/update"),
])
def test_socket_proxy_refuses_what_the_gateway_never_writes(method, path):
    assert not allowed(method, path)


def test_socket_proxy_allows_binds_from_the_runner_folders_the_gateway_requires():
    gateway = COMPOSE["services"]["docker-policy"]["environment"]
    assert PROXY["environment"]["SP_ALLOWBINDMOUNTFROM"] == gateway["DOCKER_POLICY_RUNNER_FOLDERS"]
    assert PROXY["image"] == "wollomatic/socket-proxy:1.13.1"  # bind checks on unversioned paths and volumes
    assert API_VERSIONS[0] == "1.41" and API_VERSIONS[-1] == "1.52"  # the range the regexes spell out
    assert CONFIG.label == RUNNER_LABEL and gateway["DOCKER_POLICY_LABEL"] == "${NAME_RUNNER_LABEL}"
