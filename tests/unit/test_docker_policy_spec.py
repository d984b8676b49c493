"""docker-policy's container spec check: JSON the engine reads differently (issue 20, class 3), values that
reach past a runner (class 4) and bind sources (class 5). Each case is the runner spec docker-py writes for
RunnerOperator with one change; the message must name it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from docker_policy import strict_json
from docker_policy.config import parse_bytes, runner_user
from docker_policy.create_spec import canonical_spec
from docker_policy.refusal import Refused
from tests.gateway_harness import CONFIG, runner_spec

COMPACT = strict_json.encode(runner_spec()).decode()


def check(body: str | dict[str, Any]) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return canonical_spec(strict_json.decode(raw.encode()), CONFIG)


def refusal(body: str | dict[str, Any]) -> str:
    with pytest.raises(Refused) as refused:
        check(body)
    return str(refused.value)


def injected(after: str, text: str) -> str:
    """The runner spec's compact JSON with `text` written right after the first `after`."""
    assert after in COMPACT, after
    return COMPACT.replace(after, after + text, 1)


def changed(path: str, value: Any) -> dict[str, Any]:
    """The runner spec with one value set (None deletes it); path is dotted: HostConfig.Memory."""
    spec = copy.deepcopy(runner_spec())
    *parents, last = path.split(".")
    target = spec
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is None:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return spec


def test_the_runner_spec_passes_and_is_forwarded_as_checked():
    assert check(runner_spec())["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                               "Config": {"max-size": "10m", "max-file": "2"}}
    gpu = check(runner_spec(gpu_id="GPU-0a1b2c3d-0000-4000-8000-00000000abcd"))
    assert gpu["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == ["GPU-0a1b2c3d-0000-4000-8000-00000000abcd"]
    assert check(runner_spec(gpu_id="3"))["Image"] == "helical-runner:gpu"
    with_endpoint = changed("NetworkingConfig", {"EndpointsConfig": {"helical_runners": {}}})
    assert check(with_endpoint)["NetworkingConfig"] == {"EndpointsConfig": {"helical_runners": {}}}


@pytest.mark.parametrize(("body", "reason"), [
    # Lower-case spellings Go would match to the real field.
    (injected('"HostConfig":{', '"privileged":true,'), "HostConfig.privileged is not a setting a runner uses"),
    (injected('"HostConfig":{', '"capadd":["SYS_ADMIN"],'), "HostConfig.capadd is not a setting"),
    (injected('"HostConfig":{', '"pidmode":"host",'), "HostConfig.pidmode is not a setting"),
    (injected('"HostConfig":{', '"binds":["/:/host"],'), "HostConfig.binds is not a setting"),
    (injected('"HostConfig":{', '"volumesfrom":["helical-postgres-1"],'), "HostConfig.volumesfrom is not a setting"),
    (injected('"HostConfig":{', '"devices":[{"PathOnHost":"/dev/sda"}],'), "HostConfig.devices is not a setting"),
    (injected('"HostConfig":{', '"PRIVILEGED":true,'), "HostConfig.PRIVILEGED is not a setting"),
    # The last duplicate wins in Go: User then user, two HostConfigs, a second Image or NetworkMode.
    (injected('"User":"1000:1000"', ',"user":"0"'), "'user' appears twice, as 'User' and 'user'"),
    (injected('{', '"hostConfig":{"Privileged":true},'), "appears twice, as 'hostConfig' and 'HostConfig'"),
    (injected('"Image":"helical-runner:cpu"', ',"Image":"alpine"'), "the JSON key 'Image' appears twice"),
    (injected('"Image":"helical-runner:cpu"', ',"image":"alpine"'), "as 'Image' and 'image'"),
    (injected('"NetworkMode":"helical_runners"', ',"networkmode":"host"'), "as 'NetworkMode' and 'networkmode'"),
    # ... at every level: a mount, the log options, a device request, the labels, an endpoint.
    (injected('"ReadOnly":true', ',"readonly":false'), "as 'ReadOnly' and 'readonly'"),
    (injected('"Source":"/srv/helical/data"', ',"Source":"/"'), "the JSON key 'Source' appears twice"),
    (injected('"max-size":"10m"', ',"MAX-SIZE":"10g"'), "as 'max-size' and 'MAX-SIZE'"),
    (injected('"helical.dag_id":"helical_model_workflow"', ',"helical.dag_id":"x"'), "'helical.dag_id' appears"),
    (injected('"Tmpfs":{"/tmp":"size=64m"', ',"/tmp":"size=2g,exec"'), "the JSON key '/tmp' appears twice"),
    # Keys Go folds onto ASCII ones (the Kelvin sign is K), and JSON Python reads but Go does not.
    (injected('"HostConfig":{', '"Cap\u212aadd":[],'), "is not printable ASCII"),
    (COMPACT.replace('"Memory":4294967296', '"Memory":NaN'), "NaN is not JSON"),
    (COMPACT.replace('"Memory":4294967296', '"Memory":1e400'), "the JSON number 1e400 is out of range"),
    (COMPACT.replace('"Memory":4294967296', '"Memory":4294967296.0'), "Memory must be an integer"),
    (COMPACT[:-1], "the body is not JSON"),
    (COMPACT + "{}", "the body is not JSON"),
])
def test_json_the_engine_reads_differently_is_refused(body, reason):
    assert reason in refusal(body)


def test_duplicates_inside_a_device_request_and_an_endpoint_are_refused():
    gpu = strict_json.encode(runner_spec(gpu_id="0")).decode()
    assert "as 'Count' and 'count'" in refusal(gpu.replace('"Count":0', '"Count":0,"count":-1'))
    endpoint = json.dumps(changed("NetworkingConfig", {"EndpointsConfig": {"helical_runners": {}}}))
    doubled = endpoint.replace('"helical_runners": {}', '"helical_runners": {}, "HELICAL_RUNNERS": {}')
    assert "as 'helical_runners' and 'HELICAL_RUNNERS'" in refusal(doubled)
    assert "appears twice" in refusal('{"a": {"b": {"c": 1, "c": 2}}}')  # any depth


ROOT_USERS = ["0", "00", "+0", "0000:0000", "0:0", "root", "root:root", "65534:0", "1000:0", "0:1000", "1000",
              "", " 1000:1000", "1000:1000 ", "01000:01000", "1000:1000:0"]


@pytest.mark.parametrize("user", ROOT_USERS)
def test_only_the_runners_exact_user_passes(user):
    assert f"User \"{user}\" is not the runners' user '1000:1000'" in refusal(changed("User", user))


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("HostConfig.GroupAdd", ["0"], "HostConfig.GroupAdd is not a setting a runner uses"),
    ("HostConfig.Privileged", True, "HostConfig.Privileged is not a setting"),
    ("HostConfig.Privileged", False, "HostConfig.Privileged is not a setting"),
    ("HostConfig.CapAdd", ["SYS_ADMIN"], "HostConfig.CapAdd is not a setting"),
    ("HostConfig.Devices", [{"PathOnHost": "/dev/sda"}], "HostConfig.Devices is not a setting"),
    ("HostConfig.Sysctls", {"kernel.core_pattern": "|/x"}, "HostConfig.Sysctls is not a setting"),
    ("HostConfig.Runtime", "runc", "HostConfig.Runtime is not a setting"),
    ("HostConfig.CgroupParent", "/", "HostConfig.CgroupParent is not a setting"),
    ("HostConfig.OomKillDisable", True, "HostConfig.OomKillDisable is not a setting"),
    ("HostConfig.PublishAllPorts", True, "HostConfig.PublishAllPorts is not a setting"),
    ("HostConfig.PortBindings", {"22/tcp": [{"HostPort": "22"}]}, "HostConfig.PortBindings must be {}"),
    ("HostConfig.Ulimits", [{"Name": "nofile", "Soft": 1048576, "Hard": 1048576}], "HostConfig.Ulimits must be []"),
    ("HostConfig.MaskedPaths", [], "HostConfig.MaskedPaths is not a setting"),
    ("HostConfig.ReadonlyPaths", [], "HostConfig.ReadonlyPaths is not a setting"),
    ("HostConfig.SecurityOpt", ["no-new-privileges=false"], 'SecurityOpt must be ["no-new-privileges"]'),
    ("HostConfig.SecurityOpt", ["no-new-privileges", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'],
     'SecurityOpt must be ["no-new-privileges"]'),
    ("HostConfig.SecurityOpt", ["no-new-privileges", "label=type:spc_t"], "SecurityOpt must be"),
    ("HostConfig.SecurityOpt", ["no-new-privileges", "apparmor=unconfined"], "SecurityOpt must be"),
    ("HostConfig.SecurityOpt", [], "SecurityOpt must be"),
    ("HostConfig.CapDrop", [], 'CapDrop must be ["ALL"]'),
    ("HostConfig.CapDrop", ["all"], 'CapDrop must be ["ALL"]'),
    ("HostConfig.ReadonlyRootfs", False, "ReadonlyRootfs must be true"),
    ("HostConfig.ReadonlyRootfs", 1, "ReadonlyRootfs must be true, not 1"),
    ("HostConfig.ReadonlyRootfs", None, "HostConfig.ReadonlyRootfs is missing"),
    ("HostConfig.LogConfig", {"Type": "gelf", "Config": {"gelf-address": "udp://203.0.113.9:12201"}},
     'LogConfig must be {"Type": "json-file"'),
    ("HostConfig.LogConfig", {"Type": "syslog", "Config": {"max-size": "10m", "max-file": "2"}}, "LogConfig must be"),
    ("HostConfig.LogConfig", {"Type": "json-file", "Config": {"max-size": "10g", "max-file": "2"}},
     "LogConfig must be"),
    ("HostConfig.LogConfig", {"Type": "json-file", "Config": {"max-file": "2"}}, "LogConfig must be"),
    ("HostConfig.LogConfig", {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "50"}},
     "LogConfig must be"),
    ("HostConfig.Cgroup", "container:4f1d0f4c0e2a", 'HostConfig.Cgroup must be "", not "container:'),
    ("HostConfig.PidMode", "host", 'HostConfig.PidMode must be ""'),
    ("HostConfig.IpcMode", "host", 'HostConfig.IpcMode must be ""'),
    ("HostConfig.UTSMode", "host", 'HostConfig.UTSMode must be ""'),
    ("HostConfig.UsernsMode", "host", 'HostConfig.UsernsMode must be ""'),
    ("HostConfig.CgroupnsMode", "host", 'HostConfig.CgroupnsMode must be ""'),
    ("HostConfig.NetworkMode", "host", 'NetworkMode must be "helical_runners", not "host"'),
    ("HostConfig.NetworkMode", "helical_default", "NetworkMode must be"),
    ("HostConfig.NetworkMode", "container:helical-postgres-1", "NetworkMode must be"),
    ("NetworkingConfig", {"EndpointsConfig": {"helical_runners": {"NetworkID": "5c1f3e0c2b7a"}}},
     'NetworkingConfig must be {"EndpointsConfig":{"helical_runners":{}}}'),
    ("NetworkingConfig", {"EndpointsConfig": {"helical_runners": {}, "helical_default": {}}}, "NetworkingConfig"),
    ("NetworkingConfig", {"EndpointsConfig": {"helical_default": {}}}, "NetworkingConfig must be"),
    ("HostConfig.Memory", 0, "Memory must be an integer from 1 to 4294967296"),
    ("HostConfig.Memory", (4 << 30) + 1, "Memory must be an integer from 1"),
    ("HostConfig.Memory", 4.0 * (1 << 30), "Memory must be an integer"),
    ("HostConfig.Memory", True, "Memory must be an integer"),
    ("HostConfig.MemorySwap", -1, "MemorySwap must be an integer"),
    ("HostConfig.MemorySwap", 2 << 30, "MemorySwap must equal Memory"),
    ("HostConfig.NanoCpus", 2 * 10**9, "NanoCpus must be an integer from 1 to 1000000000"),
    ("HostConfig.NanoCpus", None, "HostConfig.NanoCpus is missing"),
    ("HostConfig.PidsLimit", -1, "PidsLimit must be an integer from 1 to 1024"),
    ("HostConfig.PidsLimit", 0, "PidsLimit must be"),
    ("HostConfig.CpuShares", 10**7, "CpuShares must be"),
    ("HostConfig.Tmpfs", {"/tmp": "size=2g,exec"}, 'Tmpfs must be {"/tmp": "size=N"}'),
    ("HostConfig.Tmpfs", {"/tmp": "exec,suid"}, "Tmpfs must be"),
    ("HostConfig.Tmpfs", {"/tmp": "size=2g,mode=4777"}, "Tmpfs must be"),
    ("HostConfig.Tmpfs", {"/tmp": "size=2G"}, "Tmpfs must be"),
    ("HostConfig.Tmpfs", {"/tmp": "size=2g", "/run": "size=1m"}, "Tmpfs must be"),
    ("HostConfig.DeviceRequests", [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]],
                                    "Options": {}}], "DeviceRequests must be one request for one GPU by id"),
    ("HostConfig.DeviceRequests", [{"Driver": "", "Count": 1, "DeviceIDs": None, "Capabilities": [["gpu"]],
                                    "Options": {}}], "DeviceRequests must be one request"),
    ("HostConfig.DeviceRequests", [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]],
                                    "Options": {}}], "DeviceRequests must be one request"),
    ("HostConfig.DeviceRequests", [{"Driver": "", "Count": 0, "DeviceIDs": ["all"], "Capabilities": [["gpu"]],
                                    "Options": {}}], "DeviceRequests must be"),
    ("HostConfig.DeviceRequests", [{"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"],
                                    ["compute", "utility"]], "Options": {}}], "DeviceRequests must be"),
    ("HostConfig.DeviceRequests", [{"Driver": "cdi", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]],
                                    "Options": {}}], "DeviceRequests must be"),
    ("HostConfig.DeviceRequests", [{"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]],
                                    "Options": {"x": "y"}}], "DeviceRequests must be"),
    ("HostConfig.DeviceRequests", [], "DeviceRequests must be"),
    ("Image", "alpine:3", 'Image "alpine:3" is not a runner image (helical-runner:cpu, helical-runner:gpu)'),
    ("Image", "helical-runner:cpu@sha256:" + "0" * 64, "is not a runner image"),
    ("Image", ["helical-runner:cpu"], "is not a runner image"),  # found by the property tests: no crash
    ("HostConfig.Mounts.0.Target", ["/data"], "HostConfig.Mounts must be exactly"),
    ("Labels", {"helical.task_id": "t"}, "Labels must include the runner label 'helical.dag_id'"),
    ("Labels.com.docker.compose.service", "postgres", "runner labels are helical.* keys"),
    ("Labels.helical.dag_id", 1, "runner labels are helical.* keys with string values"),
    ("Env", ["STATSD_HOST=statsd-exporter", "LD_PRELOAD=/results/x.so"], "Env \"LD_PRELOAD=/results/x.so\""),
    ("Env", ["STATSD_HOST=a", "STATSD_HOST=b"], "is not one of STATSD_HOST, STATSD_PORT, once each"),
    ("Env", ["STATSD_PORT=9125\nX=1"], "is not one of STATSD_HOST, STATSD_PORT"),
    ("Entrypoint", ["sh", "-c", "id"], "Entrypoint is not a setting a runner uses"),
    ("WorkingDir", "/results", "WorkingDir is not a setting"),
    ("Volumes", {"/x": {}}, "Volumes is not a setting"),
    ("Healthcheck", {"Test": ["CMD", "id"]}, "Healthcheck is not a setting"),
    ("Hostname", "x", "Hostname is not a setting"),
    ("OpenStdin", True, "OpenStdin must be false"),
    ("Tty", True, "Tty must be false"),
    ("AttachStdin", True, "AttachStdin must be false"),
    ("Cmd", "helical-runner run", "Cmd must be a list of strings"),
    ("HostConfig", None, "HostConfig is missing"),
    ("User", None, "User is missing"),
])
def test_values_that_reach_past_a_runner_are_refused(path, value, reason):
    if path.startswith("Labels."):  # label keys hold dots
        spec = copy.deepcopy(runner_spec())
        spec["Labels"][path.removeprefix("Labels.")] = value
        assert reason in refusal(spec)
    else:
        assert reason in refusal(changed(path, value))


def test_every_problem_of_a_spec_is_named_at_once():
    spec = changed("HostConfig.Privileged", True)
    spec["User"] = "0"
    message = refusal(spec)
    assert "HostConfig.Privileged is not a setting" in message and 'User "0" is not' in message


DATA, RESULTS, MODELS = CONFIG.data_dir, CONFIG.results_dir, CONFIG.models_dir


@pytest.mark.parametrize(("index", "mount"), [
    (0, {"Target": "/data", "Source": "/", "Type": "bind", "ReadOnly": True}),
    (0, {"Target": "/data", "Source": "/var/run", "Type": "bind", "ReadOnly": True}),
    # Below an allowed folder: results/x may be a symlink a worker planted (results/x -> /).
    (1, {"Target": "/results", "Source": RESULTS + "/x", "Type": "bind", "ReadOnly": False}),
    (0, {"Target": "/data", "Source": DATA + "/../../..", "Type": "bind", "ReadOnly": True}),
    (0, {"Target": "/data", "Source": DATA + "/", "Type": "bind", "ReadOnly": True}),
    (0, {"Target": "/data", "Source": RESULTS, "Type": "bind", "ReadOnly": True}),
    # Data and models read-write.
    (0, {"Target": "/data", "Source": DATA, "Type": "bind", "ReadOnly": False}),
    (2, {"Target": "/models", "Source": MODELS, "Type": "bind", "ReadOnly": False}),
    (2, {"Target": "/models", "Source": MODELS, "Type": "bind"}),
    # A volume with the local driver's bind options is a bind in all but name.
    (1, {"Target": "/results", "Source": "x", "Type": "volume", "ReadOnly": False,
         "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}),
    (1, {"Target": "/results", "Source": "helical_postgres-db", "Type": "volume", "ReadOnly": False}),
    (1, {"Target": "/results", "Source": RESULTS, "Type": "bind", "ReadOnly": False,
         "BindOptions": {"Propagation": "rshared"}}),
    (1, {"Target": "/results", "Source": RESULTS, "Type": "bind", "ReadOnly": False, "Consistency": "cached"}),
    (1, {"Target": "/results", "Source": "", "Type": "tmpfs", "ReadOnly": False}),
    (1, {"Target": "/results2", "Source": RESULTS, "Type": "bind", "ReadOnly": False}),
])
def test_bind_sources_are_exactly_the_three_folders(index, mount):
    expected = runner_spec()["HostConfig"]["Mounts"][index]
    message = refusal(changed(f"HostConfig.Mounts.{index}", mount))
    assert message.startswith("HostConfig.Mounts has ") and message.endswith(
        f" at {expected['Target']}: it must be {strict_json.encode(expected).decode()}"), message


def test_a_fourth_mount_a_missing_one_or_a_doubled_one_is_refused():
    spec = runner_spec()
    mounts = spec["HostConfig"]["Mounts"]
    for wrong in ([*mounts, {"Target": "/host", "Source": "/", "Type": "bind", "ReadOnly": True}], mounts[:2],
                  [mounts[0], mounts[0], mounts[2]], [*mounts[:2], "/models"]):
        assert "HostConfig.Mounts must be exactly" in refusal(changed("HostConfig.Mounts", wrong))
    reordered = check(changed("HostConfig.Mounts", list(reversed(mounts))))
    assert reordered["HostConfig"]["Mounts"] == mounts  # forwarded in one order


def test_the_settings_parse_as_docker_py_and_the_operator_read_them():
    import docker.utils

    from helical_workflow.settings import load_settings

    for size in ("4g", "512m", "1.5g", "4gb", "4096", "10k", "2G"):
        assert parse_bytes(size) == docker.utils.parse_bytes(size), size
    for uid in ("1000", "1001", "65533"):
        assert runner_user(uid) == load_settings({"HELICAL_RUNNER_UID": uid}).runner_user
    for bad in ("0", "00", "-1", "+5", "1000:1000", "root", ""):
        with pytest.raises(ValueError, match="not a non-root uid"):
            runner_user(bad)


def test_the_gateway_reads_its_settings_and_stops_naming_a_wrong_one():
    from docker_policy.config import from_environment

    env = {"DOCKER_POLICY_IMAGES": "helical-runner:cpu, helical-runner:gpu", "DOCKER_POLICY_NETWORK": "helical_runners",
           "DOCKER_POLICY_LABEL": "helical.dag_id", "DOCKER_POLICY_RUNNER_UID": "1000",
           "DOCKER_POLICY_RUNNER_MEMORY": "4g", "DOCKER_POLICY_RUNNER_CPUS": "1",
           "DOCKER_POLICY_RUNNER_FOLDERS": "/srv/helical/data,/srv/helical/results,/srv/helical/models"}
    assert from_environment(env) == CONFIG
    for key, value, reason in (("DOCKER_POLICY_NETWORK", " ", "DOCKER_POLICY_NETWORK is empty"),
                               ("DOCKER_POLICY_RUNNER_UID", "0", "RUNNER_UID '0' is not a non-root uid"),
                               ("DOCKER_POLICY_RUNNER_MEMORY", "lots", "'lots' is not a size"),
                               ("DOCKER_POLICY_RUNNER_FOLDERS", "data,results,models", "absolute data, results")):
        with pytest.raises(SystemExit, match=reason):
            from_environment({**env, key: value})
