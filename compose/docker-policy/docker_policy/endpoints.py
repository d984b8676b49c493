"""The Docker API calls a runner task makes (docker-py 7 under the DockerOperator), and how each is forwarded.

Every request is matched against this table on its exact path (no percent-encoding: dockerd routes on the
decoded path, so an encoded one is a second reading of the same request) and its query parameters, each
decoded strictly, checked and written back canonically. The forwarded target is built from the match:
`/v<version>/...` with the version the client named (one of API_VERSIONS), and, for a call on a container,
the full ID the gateway resolved and checked (server.py), never the name or prefix the client gave.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote, unquote_to_bytes

from docker_policy import strict_json
from docker_policy.config import Config
from docker_policy.refusal import Refused

# Engine API versions whose create semantics were reviewed: Docker 20.10 (1.41) to 29 (1.52). docker-py asks
# the engine's own version (GET /version, unversioned, is how it learns it).
API_VERSIONS = tuple(f"1.{minor}" for minor in range(41, 53))
VERSIONED = re.compile(r"/v(?P<version>[0-9][^/]*)(?P<rest>/.*)")
# A container's name or ID as docker-py puts it in a path (names: [a-zA-Z0-9][a-zA-Z0-9_.-]+).
REF = r"(?P<ref>[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254})"
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,199}")
HEX = re.compile(r"[0-9a-fA-F]+")
ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
CONTAINER_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
LABEL_FILTER = re.compile(r"[\x20-\x7e]{1,512}")

Param = Callable[[str | None, Config], str | None]


def flag(value: str | None, _config: Config) -> str | None:
    """docker-py writes booleans as 0/1, or True/False where requests stringifies them: forwarded as 0/1."""
    if value is None:
        return None
    if value.lower() not in ("0", "1", "true", "false"):
        raise Refused(f"{value!r} is not 0 or 1")
    return "1" if value.lower() in ("1", "true") else "0"


def unset_flag(value: str | None, config: Config) -> str | None:
    if flag(value, config) == "1":
        raise Refused("must be 0")
    return flag(value, config)


def integer(low: int, high: int) -> Param:
    def check(value: str | None, _config: Config) -> str | None:
        if value is not None and not (re.fullmatch(r"-?(0|[1-9][0-9]{0,9})", value) and low <= int(value) <= high):
            raise Refused(f"{value!r} is not an integer from {low} to {high}")
        return None if value is None else str(int(value))

    return check


def choice(*allowed: str) -> Param:
    def check(value: str | None, _config: Config) -> str | None:
        if value is not None and value not in allowed:
            raise Refused(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


def container_name(value: str | None, _config: Config) -> str | None:
    """A new runner's name; never hex digits alone, which another call could read as an ID prefix."""
    if value is not None and (not CONTAINER_NAME.fullmatch(value) or HEX.fullmatch(value)):
        raise Refused(f"{value!r} is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+, not only hex digits)")
    return value


def filters(value: str, allowed: Mapping[str, Callable[[str], bool]]) -> dict[str, list[str]]:
    decoded = strict_json.decode(value.encode())
    if not isinstance(decoded, dict) or not set(decoded) <= set(allowed) or not all(
            isinstance(terms, list) and terms and all(isinstance(t, str) and allowed[key](t) for t in terms)
            for key, terms in decoded.items()):
        raise Refused(f"{value!r}: allowed filters are {', '.join(allowed)}, each a list of allowed strings")
    return decoded


def image_filters(value: str | None, config: Config) -> str | None:
    """The image list only answers whether a runner image is there."""
    if value is None:
        raise Refused("images/json must filter by reference to a runner image")
    return strict_json.encode(filters(value, {"reference": config.images.__contains__})).decode()


def container_filters(value: str | None, config: Config) -> str | None:
    """The container list always carries the runner label filter: a worker lists runners, nothing else."""
    decoded = filters(value, {"label": LABEL_FILTER.fullmatch, "status": CONTAINER_STATES.__contains__}) \
        if value is not None else {}
    labels = decoded.get("label", [])
    decoded["label"] = labels if config.label in labels else [*labels, config.label]
    return strict_json.encode(decoded).decode()


def tail(value: str | None, config: Config) -> str | None:
    return value if value == "all" else integer(0, 1 << 30)(value, config)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{ref}" stands for a container
    params: Mapping[str, Param] = field(default_factory=dict)
    body: bool = False  # a container spec (create)
    upgrade: bool = False  # the connection becomes the container's output stream (attach)
    unversioned: bool = False  # allowed without /v1.NN (docker-py's version probe)

    def matches(self, path: str) -> re.Match[str] | None:
        return re.fullmatch(re.escape(self.path).replace(re.escape("{ref}"), REF), path)


FLAGS = dict.fromkeys(("stdout", "stderr"), flag)
ENDPOINTS = (
    Endpoint("GET", "/version", unversioned=True),
    Endpoint("GET", "/_ping"),
    Endpoint("GET", "/images/json", {"only_ids": flag, "all": flag, "filters": image_filters}),
    Endpoint("GET", "/containers/json", {"limit": integer(-1, 10000), "all": flag, "size": flag, "trunc_cmd": flag,
                                         "filters": container_filters}),
    Endpoint("POST", "/containers/create", {"name": container_name}, body=True),
    Endpoint("GET", "/containers/{ref}/json"),
    Endpoint("GET", "/containers/{ref}/logs", {**FLAGS, "timestamps": flag, "follow": flag, "tail": tail}),
    Endpoint("POST", "/containers/{ref}/attach", {"logs": flag, **FLAGS, "stream": flag}, upgrade=True),
    Endpoint("POST", "/containers/{ref}/start"),
    Endpoint("POST", "/containers/{ref}/wait", {"condition": choice("not-running", "next-exit", "removed")}),
    Endpoint("POST", "/containers/{ref}/stop", {"t": integer(0, 600)}),
    Endpoint("DELETE", "/containers/{ref}", {"v": flag, "link": unset_flag, "force": flag}),
)


@dataclass(frozen=True)
class Call:
    """A request that matched the table: what the gateway will forward, once a container ref is resolved."""

    endpoint: Endpoint
    version: str | None
    ref: str | None
    params: tuple[tuple[str, str], ...]

    def target(self, container_id: str | None = None) -> str:
        """The canonical request target; `container_id`, the full ID, stands for the client's ref."""
        path = self.endpoint.path.replace("{ref}", container_id or "")
        query = "&".join(f"{name}={quote(value, safe='')}" for name, value in self.params)
        return f"{'/v' + self.version if self.version else ''}{path}{'?' + query if query else ''}"

    def inspect_target(self) -> str:
        """Where the gateway reads the container the client named: its full ID and labels."""
        return f"/v{self.version}/containers/{self.ref}/json"


def decode_component(text: str) -> str:
    """A query name or value as Go's url.ParseQuery reads it (+ is a space), refusing what it would refuse."""
    if "%" in ESCAPE.sub("", text) or ";" in text:
        raise Refused(f"the query part {text!r} has a malformed escape or a ';'", HTTPStatus.BAD_REQUEST)
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refused(f"the query part {text!r} is not UTF-8", HTTPStatus.BAD_REQUEST) from err


def decode_query(query: str) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for part in query.split("&") if query else ():
        name, equals, value = part.partition("=")
        name = decode_component(name)
        if not equals or name in decoded:
            raise Refused(f"the query parameter {name!r} is {'repeated' if equals else 'without a value'}",
                          HTTPStatus.BAD_REQUEST)
        decoded[name] = decode_component(value)
    return decoded


def split_target(target: str) -> tuple[str | None, str, str]:
    """(API version or None, path after it, raw query) of an origin-form target, or Refused."""
    if not target.startswith("/"):
        raise Refused("only origin-form targets (/path?query) are accepted, not absolute- or authority-form",
                      HTTPStatus.BAD_REQUEST)
    path, _, query = target.partition("?")
    if "%" in path or "#" in target:
        raise Refused("the path must be sent decoded: no '%' escapes (the engine routes on the decoded path) "
                      "and no '#'", HTTPStatus.BAD_REQUEST)
    versioned = VERSIONED.fullmatch(path)
    if not versioned:
        return None, path, query
    if versioned["version"] not in API_VERSIONS:
        raise Refused(f"API version {versioned['version']!r} is not one of {API_VERSIONS[0]} to {API_VERSIONS[-1]}")
    return versioned["version"], versioned["rest"], query


def route(method: str, target: str, config: Config) -> Call:
    """The Call a request target makes on the table, or Refused saying why none."""
    version, path, query = split_target(target)
    matched = [(endpoint, match) for endpoint in ENDPOINTS if (match := endpoint.matches(path))]
    found = [(endpoint, match) for endpoint, match in matched if endpoint.method == method]
    if not found:
        raise Refused(f"{path} does not take {method}" if matched else f"{path} is not a call a runner task makes")
    endpoint, match = found[0]
    if version is None and not endpoint.unversioned:
        raise Refused(f"the path must name the API version (/v{API_VERSIONS[0]}{path}, as docker-py sends it)")
    given = decode_query(query)
    unknown = sorted(set(given) - set(endpoint.params))
    if unknown:
        raise Refused(f"query parameter {', '.join(map(repr, unknown))} is not one {endpoint.path} takes")
    params = []
    for name, check in endpoint.params.items():
        try:
            value = check(given.get(name), config)
        except Refused as err:
            raise Refused(f"query parameter {name}: {err}", err.status) from err
        if value is not None:
            params.append((name, value))
    return Call(endpoint, version, match.groupdict().get("ref"), tuple(params))

