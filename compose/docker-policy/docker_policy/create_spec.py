"""The container spec a worker may create: RunnerOperator's runner (dags/helical_workflow/operator.py), key for
key and value for value, as docker-py 7 serialises it. Anything else is refused, naming the key and the value
the gateway expects; what passes is returned as the canonical object the gateway forwards.

An allowlist of exact values, not a list of dangers: a key the table below does not name (Privileged, CapAdd,
Binds, GroupAdd, MaskedPaths, Runtime, lower-case spellings...) cannot reach the engine, whatever it means there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from docker_policy.config import Config, parse_bytes
from docker_policy.refusal import Refused
from docker_policy.strict_json import encode

Check = Callable[[Any, Config], Any]
# A runner needs a few hundred PIDs (RunnerOperator asks for 512): more is a fork bomb's room.
MAX_PIDS = 1024
# CPU shares are relative weights (the DockerOperator sends 1024 per CPU); the engine's own bounds.
CPU_SHARES = (2, 262144)
# The runner's log is a copy of the task log: json-file on the host's disk, capped.
LOG_DRIVER = "json-file"
LOG_MAX_SIZE = 100 << 20
LOG_MAX_FILES = 5
LOG_FILES = re.compile(f"[1-{LOG_MAX_FILES}]")
LOG_SIZE = re.compile(r"[1-9][0-9]{0,5}[kmg]")
TMPFS_SIZE = re.compile(r"size=[1-9][0-9]{0,5}[kmg]")
# The runner's environment: where its StatsD metrics go (RunnerOperator.execute).
ENV_VALUES = {"STATSD_HOST": re.compile(r"[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}"),
              "STATSD_PORT": re.compile(r"[1-9][0-9]{0,4}")}
LABEL_KEY = re.compile(r"helical\.[a-z0-9_.]{1,64}")
# One GPU, by index or by UUID (issue 21: a count would hand every runner GPU 0, or every GPU with -1).
GPU_ID = re.compile(r"0|[1-9][0-9]{0,2}|GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
GPU_DRIVERS = ("", "nvidia")


def show(value: Any) -> str:
    """A value as the message shows it: JSON, cut short."""
    text = encode(value).decode()
    return text if len(text) <= 120 else text[:117] + "..."


def exactly(expected: Any) -> Check:
    """Only this value; compared as JSON, so true is not 1 and 1 is not 1.0."""

    def check(value: Any, _config: Config) -> Any:
        if encode(value) != encode(expected):
            raise Refused(f"must be {show(expected)}, not {show(value)}")
        return value

    return check


def integer(low: int, high: Callable[[Config], int] | int) -> Check:
    def check(value: Any, config: Config) -> int:
        top = high(config) if callable(high) else high
        if type(value) is not int or not low <= value <= top:
            raise Refused(f"must be an integer from {low} to {top}, not {show(value)}")
        return value

    return check


def image(value: Any, config: Config) -> str:
    if not isinstance(value, str) or value not in config.images:
        raise Refused(f"{show(value)} is not a runner image ({', '.join(sorted(config.images))})")
    return value


def user(value: Any, config: Config) -> str:
    if value != config.user:
        raise Refused(f"{show(value)} is not the runners' user {config.user!r} (RUNNER_UID:RUNNER_UID)")
    return value


def string_list(value: Any, _config: Config) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Refused(f"must be a list of strings, not {show(value)}")
    return value


def environment(value: Any, config: Config) -> list[str]:
    seen = set()
    for item in string_list(value, config):
        name, _, setting = item.partition("=")
        rule = ENV_VALUES.get(name)
        if rule is None or name in seen or not rule.fullmatch(setting):
            raise Refused(f"{show(item)} is not one of {', '.join(ENV_VALUES)}, once each, with a plain value")
        seen.add(name)
    return value


def labels(value: Any, config: Config) -> dict[str, str]:
    if not isinstance(value, dict) or config.label not in value:
        raise Refused(f"must include the runner label {config.label!r}")
    for key, setting in value.items():
        # Values are inert text of any length (helical.dataset lists a pack's datasets).
        if not LABEL_KEY.fullmatch(key) or not isinstance(setting, str):
            raise Refused(f"{show({key: setting})}: runner labels are helical.* keys with string values")
    return value


def mounts(value: Any, config: Config) -> list[dict[str, Any]]:
    """Exactly the three folders, bind-mounted from their exact host paths: no sub-folder (a symlink a worker
    planted in results/ would turn one into any host path), no volume, no propagation or driver options."""
    expected = [{"Target": "/data", "Source": config.data_dir, "Type": "bind", "ReadOnly": True},
                {"Target": "/results", "Source": config.results_dir, "Type": "bind", "ReadOnly": False},
                {"Target": "/models", "Source": config.models_dir, "Type": "bind", "ReadOnly": True}]
    given = value if isinstance(value, list) else []
    by_target = {mount["Target"]: mount for mount in given if isinstance(mount, dict)
                 and isinstance(mount.get("Target"), str)}
    if len(given) != len(expected) or len(by_target) != len(expected):
        raise Refused(f"must be exactly {show(expected)}, not {show(value)}")
    for mount in expected:
        if encode(by_target.get(mount["Target"])) != encode(mount):
            raise Refused(f"has {show(by_target.get(mount['Target']))} at {mount['Target']}: it must be {show(mount)}")
    return expected


def tmpfs(value: Any, _config: Config) -> dict[str, str]:
    """/tmp alone, with a size and no other option (noexec, nosuid and nodev stay the engine's defaults). What it
    holds counts against the container's memory limit, so the size needs no bound of its own."""
    option = value.get("/tmp") if isinstance(value, dict) and len(value) == 1 else None
    if not (isinstance(option, str) and TMPFS_SIZE.fullmatch(option)):
        raise Refused(f"must be {{\"/tmp\": \"size=N\"}} (N: digits and k, m or g), not {show(value)}")
    return value


def capped(options: Any) -> bool:
    if not isinstance(options, dict) or set(options) != {"max-size", "max-file"}:
        return False
    size, files = options["max-size"], options["max-file"]
    return (isinstance(size, str) and LOG_SIZE.fullmatch(size) is not None and parse_bytes(size) <= LOG_MAX_SIZE
            and isinstance(files, str) and LOG_FILES.fullmatch(files) is not None)


def log_config(value: Any, _config: Config) -> dict[str, Any]:
    """json-file with a size and a file-count cap. null and "" (docker-py's LogConfig without a type) mean the
    engine's default driver, which a daemon.json may point anywhere: forwarded as json-file."""
    if not (isinstance(value, dict) and set(value) == {"Type", "Config"}
            and value["Type"] in (None, "", LOG_DRIVER) and capped(value["Config"])):
        raise Refused(f"must be {{\"Type\": \"{LOG_DRIVER}\", \"Config\": {{\"max-size\": up to 100m, "
                      f"\"max-file\": 1 to {LOG_MAX_FILES}}}}}, not {show(value)}")
    return {"Type": LOG_DRIVER, "Config": value["Config"]}


def device_requests(value: Any, config: Config) -> list[dict[str, Any]]:
    """One GPU named by its id: Count 0, one device id, the gpu capability, no options."""
    request = value[0] if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) else {}
    ids = request.get("DeviceIDs")
    if set(request) != {"Driver", "Count", "DeviceIDs", "Capabilities", "Options"} \
            or request["Driver"] not in GPU_DRIVERS or encode(request["Count"]) != b"0" \
            or not (isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], str) and GPU_ID.fullmatch(ids[0])) \
            or encode(request["Capabilities"]) != b'[["gpu"]]' or request["Options"] != {}:
        raise Refused(f"must be one request for one GPU by id ({{\"Driver\": \"\", \"Count\": 0, \"DeviceIDs\": "
                      f"[\"0\"], \"Capabilities\": [[\"gpu\"]], \"Options\": {{}}}}), not {show(value)}")
    return value


def networking(value: Any, config: Config) -> dict[str, Any]:
    """The runner network by name and nothing else: an endpoint's NetworkID would attach by ID at start."""
    return exactly({"EndpointsConfig": {config.network: {}}})(value, config)


def network_mode(value: Any, config: Config) -> str:
    return exactly(config.network)(value, config)


# key: (required, check). Optional keys carry the value docker-py always sends, or a bounded one.
HOST_CONFIG: dict[str, tuple[bool, Check]] = {
    "NetworkMode": (True, network_mode),
    "Memory": (True, integer(1, lambda config: config.max_memory)),
    "MemorySwap": (True, integer(1, lambda config: config.max_memory)),
    "NanoCpus": (True, integer(1, lambda config: config.max_nano_cpus)),
    "PidsLimit": (True, integer(1, MAX_PIDS)),
    "ReadonlyRootfs": (True, exactly(True)),
    "CapDrop": (True, exactly(["ALL"])),
    "SecurityOpt": (True, exactly(["no-new-privileges"])),
    "Mounts": (True, mounts),
    "Tmpfs": (True, tmpfs),
    "LogConfig": (True, log_config),
    "PortBindings": (False, exactly({})),
    "Ulimits": (False, exactly([])),
    "CpuShares": (False, integer(*CPU_SHARES)),
    "DeviceRequests": (False, device_requests),
    **{mode: (False, exactly("")) for mode in ("Cgroup", "PidMode", "IpcMode", "UTSMode", "UsernsMode",
                                                  "CgroupnsMode")},
}


def host_config(value: Any, config: Config) -> dict[str, Any]:
    checked = checked_object(value, HOST_CONFIG, config, "HostConfig.")
    if checked["MemorySwap"] != checked["Memory"]:
        raise Refused(f"HostConfig.MemorySwap must equal Memory {checked['Memory']} (no swap), "
                      f"not {show(checked['MemorySwap'])}")
    return checked


CONTAINER: dict[str, tuple[bool, Check]] = {
    "Image": (True, image),
    "User": (True, user),
    "Labels": (True, labels),
    "HostConfig": (True, host_config),
    "Cmd": (False, string_list),
    "Env": (False, environment),
    "NetworkingConfig": (False, networking),
    "ExposedPorts": (False, exactly({})),
    "NetworkDisabled": (False, exactly(False)),
    "Tty": (False, exactly(False)),
    "OpenStdin": (False, exactly(False)),
    "StdinOnce": (False, exactly(False)),
    "AttachStdin": (False, exactly(False)),
    "AttachStdout": (False, exactly(True)),
    "AttachStderr": (False, exactly(True)),
}


def checked_object(value: Any, table: Mapping[str, tuple[bool, Check]], config: Config,
                   where: str) -> dict[str, Any]:
    """Each key of `value` checked by its rule, every problem named; Refused if there is any."""
    if not isinstance(value, dict):
        raise Refused(f"{where.rstrip('.') or 'the container spec'} must be a JSON object, not {show(value)}")
    problems = [f"{where}{key} is not a setting a runner uses" for key in value if key not in table]
    problems += [f"{where}{key} is missing" for key, (required, _) in table.items() if required and key not in value]
    checked = {}
    for key in value.keys() & table.keys():
        try:
            checked[key] = table[key][1](value[key], config)
        except Refused as err:
            problems.append(str(err) if str(err).startswith(where + key) else f"{where}{key} {err}")
    if problems:
        raise Refused("; ".join(sorted(problems)))
    return checked


def canonical_spec(spec: Any, config: Config) -> dict[str, Any]:
    """The spec the gateway forwards: the keys given, each with its checked value."""
    return checked_object(spec, CONTAINER, config, "")
