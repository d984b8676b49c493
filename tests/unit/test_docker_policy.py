"""The container-create policy of docker-policy (compose/docker-policy/policy.py) on the specs workers send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy import Policy, from_environment

POLICY = Policy(images=frozenset({"helical-runner:cpu", "helical-runner:gpu"}),
                networks=frozenset({"helical_runners"}), label="helical.dag_id")
CREATE = "/v1.41/containers/create"


def runner_spec(**host: Any) -> dict[str, Any]:
    """A create request as RunnerOperator sends it (docker-py's field names), with `host` overriding HostConfig."""
    return {
        "Image": "helical-runner:cpu", "User": "1000", "Cmd": ["helical-runner", "run"],
        "Labels": {"helical.dag_id": "helical_model_workflow"},
        "HostConfig": {
            "NetworkMode": "helical_runners", "Memory": 4 << 30, "MemorySwap": 4 << 30, "NanoCpus": 10**9,
            "ReadonlyRootfs": True, "Tmpfs": {"/tmp": "size=2g"}, "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"], "PidsLimit": 512, "Privileged": False, "AutoRemove": False,
            "Mounts": [{"Target": "/data", "Source": "/srv/data", "Type": "bind", "ReadOnly": True},
                       {"Target": "/results", "Source": "/srv/results", "Type": "bind", "ReadOnly": False}],
            "LogConfig": {"Type": "", "Config": {"max-size": "10m"}},
            **host,
        },
    }


def refusal(spec: dict[str, Any], path: str = CREATE, method: str = "POST") -> str | None:
    return POLICY.refusal(method, path, json.dumps(spec).encode())


def test_a_runner_spec_passes_on_cpu_and_with_one_gpu():
    assert refusal(runner_spec()) is None
    gpu = runner_spec(DeviceRequests=[{"Driver": "", "Count": 1, "DeviceIDs": None, "Capabilities": [["gpu"]],
                                       "Options": {}}])
    gpu["Image"] = "helical-runner:gpu"
    assert refusal(gpu) is None


@pytest.mark.parametrize(("host", "reason"), [
    ({"Privileged": True}, "Privileged is set"),
    ({"CapAdd": ["SYS_ADMIN"]}, "CapAdd is set"),
    ({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}, "Devices is set"),
    ({"Binds": ["/:/host"]}, "Binds is set"),
    ({"VolumesFrom": ["helical-socket-proxy-1"]}, "VolumesFrom is set"),
    ({"PidMode": "host"}, "PidMode 'host' shares a namespace"),
    ({"IpcMode": "container:abc"}, "IpcMode 'container:abc' shares a namespace"),
    ({"UsernsMode": "host"}, "UsernsMode 'host' shares a namespace"),
    ({"NetworkMode": "host"}, "network 'host' is not a runner network"),
    ({"NetworkMode": "helical_default"}, "network 'helical_default' is not a runner network"),
    ({"CapDrop": []}, "CapDrop lacks ALL"),
    ({"SecurityOpt": []}, "SecurityOpt lacks no-new-privileges"),
    ({"SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]}, "weakens confinement"),
    ({"ReadonlyRootfs": False}, "root filesystem is writable"),
    ({"Memory": 0}, "must be bounded"),
    ({"Mounts": [{"Target": "/db", "Source": "helical_postgres-db", "Type": "volume"}]}, "'volume' mount"),
    ({"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu", "compute"], ["fpga"]]}]},
     "asks for more than a GPU"),
    ({"Runtime": "runsc-debug"}, "runtime 'runsc-debug'"),
    ({"PortBindings": {"22/tcp": [{"HostPort": "22"}]}}, "PortBindings is set"),
])
def test_a_spec_reaching_past_the_runner_is_refused_naming_why(host, reason):
    assert reason in (refusal(runner_spec(**host)) or "")


def test_other_images_root_users_and_extra_networks_are_refused():
    spec = runner_spec()
    spec["Image"] = "alpine:3"
    assert "image 'alpine:3' is not a runner image" in refusal(spec)
    for user in ("", "0", "root", "0:0"):
        assert "root" in refusal({**runner_spec(), "User": user})
    spec = {**runner_spec(), "NetworkingConfig": {"EndpointsConfig": {"helical_default": {}}}}
    assert "network 'helical_default'" in refusal(spec)
    assert "the label helical.dag_id is missing" in refusal({**runner_spec(), "Labels": {"app": "x"}})


def test_calls_on_one_container_are_judged_by_its_labels():
    for path in ("/v1.41/containers/abc/json", "/containers/abc/logs", "/v1.41/containers/abc",
                 "/v1.41/containers/abc/exec", "/v1.41/containers/abc/attach"):
        assert POLICY.target_container(path) == "abc", path
    for path in ("/v1.41/containers/create", "/v1.41/containers/json", "/containers/prune", "/_ping",
                 "/v1.41/images/json"):
        assert POLICY.target_container(path) is None, path
    assert POLICY.is_runner({"helical.dag_id": "helical_model_workflow"})
    assert not POLICY.is_runner({"com.docker.compose.service": "postgres"}) and not POLICY.is_runner(None)


def test_only_creates_are_read_and_a_body_that_is_not_a_spec_is_refused():
    assert refusal({}, path="/v1.41/containers/abc/start") is None  # paths are socket-proxy's job
    assert refusal({}, path="/v1.41/containers/json", method="GET") is None
    assert POLICY.refusal("POST", "/containers/create", b"not json") == "the container spec is not JSON"
    assert POLICY.refusal("POST", "/containers/create", b"[]") == "the container spec is not a JSON object"


def test_the_policy_needs_its_images_and_networks():
    with pytest.raises(SystemExit, match="DOCKER_POLICY_NETWORKS"):
        from_environment({"DOCKER_POLICY_IMAGES": "helical-runner:cpu", "DOCKER_POLICY_NETWORKS": " , "})
    policy = from_environment({"DOCKER_POLICY_IMAGES": "a:1, b:2", "DOCKER_POLICY_NETWORKS": "n",
                               "DOCKER_POLICY_LABEL": "helical.dag_id"})
    assert policy == Policy(images=frozenset({"a:1", "b:2"}), networks=frozenset({"n"}), label="helical.dag_id")


def test_the_proxy_forwards_one_request_per_connection_and_keeps_an_attach_upgrade():
    from proxy import forwarded_head, parse_head

    line, fields = parse_head(b"POST /v1.41/containers/x/attach?stream=1 HTTP/1.1\r\nHost: docker\r\n"
                              b"Connection: Upgrade\r\nUpgrade: tcp\r\nKeep-Alive: 5\r\n\r\n")
    assert forwarded_head(line, fields, upgrade=True).split(b"\r\n")[1:] == [
        b"Host: docker", b"Upgrade: tcp", b"Connection: Upgrade, close", b"", b""]
    assert b"Connection: close\r\n" in forwarded_head(line, fields, upgrade=False)
    with pytest.raises(ValueError, match="malformed"):
        parse_head(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
