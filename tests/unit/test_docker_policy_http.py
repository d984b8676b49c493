"""docker-policy against a worker that writes its own HTTP: path forms (issue 20, class 1), request smuggling
(class 2), sizes and slow clients. The gateway runs for real; the recording engine shows what reached it."""

from __future__ import annotations

import json
import socket
import time

import h11
import pytest

from docker_policy import http_wire
from docker_policy.refusal import Refused
from tests.gateway_harness import answer_of, exchange, http_request, runner_spec, running_engine, running_gateway

SPEC = json.dumps(runner_spec()).encode()
CREATE = "/v1.41/containers/create"


@pytest.fixture
def gateway():
    with running_engine() as (engine, engine_port), running_gateway(engine_port) as port:
        yield engine, port


def refused(gateway, raw: bytes) -> tuple[int, str]:
    """The gateway's answer to raw bytes, having checked that nothing reached the engine."""
    engine, port = gateway
    status, message = answer_of(exchange(port, raw))
    assert engine.received == [], engine.received
    return status, message


def create_with(target: str) -> bytes:
    return http_request("POST", target, SPEC)


@pytest.mark.parametrize(("raw", "status", "reason"), [
    # Percent-encoded segments and versions: dockerd decodes them and routes /containers/create.
    (create_with("/%63ontainers/create"), 400, "no '%' escapes"),
    (create_with("/v1%2E47/containers/create"), 400, "no '%' escapes"),
    (create_with("/v1.41/containers%2Fcreate"), 400, "no '%' escapes"),
    (create_with("/v1.41/containers/cre%61te"), 400, "no '%' escapes"),
    (http_request("GET", "/v1.41/containers/%70ostgres/json"), 400, "no '%' escapes"),
    (http_request("DELETE", "/v1.41/containers/helical-postgres-1%3Fforce=1"), 400, "no '%' escapes"),
    # Absolute- and authority-form targets, and the asterisk.
    (create_with("http://docker/v1.41/containers/create"), 400, "only origin-form targets"),
    (create_with("HTTP://docker:2375/containers/create"), 400, "only origin-form targets"),
    (http_request("CONNECT", "docker:2375"), 400, "only origin-form targets"),
    (http_request("OPTIONS", "*"), 400, "only origin-form targets"),
    (create_with("/v1.41/containers/create#x"), 400, "no '#'"),
    # Unversioned, or a version outside the reviewed range, or one written differently.
    (create_with("/containers/create"), 403, "must name the API version"),
    (create_with("/v1.24/containers/create"), 403, "API version '1.24' is not one of 1.41 to 1.52"),
    (create_with("/v1.041/containers/create"), 403, "API version '1.041'"),
    (create_with("/v1.41.0/containers/create"), 403, "API version '1.41.0'"),
    (create_with("/v2/containers/create"), 403, "API version '2'"),
    # Dot segments and doubled slashes are other paths, not aliases.
    (create_with("/v1.41//containers/create"), 403, "is not a call a runner task makes"),
    (create_with("/v1.41/containers/x/../create"), 403, "is not a call a runner task makes"),
    (http_request("POST", "/v1.41/containers/abc/exec"), 403, "is not a call a runner task makes"),
    (http_request("POST", "/v1.41/images/create?fromImage=alpine"), 403, "is not a call a runner task makes"),
    (http_request("POST", "/v1.41/volumes/create"), 403, "is not a call a runner task makes"),
    (http_request("PUT", "/v1.41/containers/create"), 403, "does not take PUT"),
    (http_request("post", CREATE, SPEC), 403, "does not take post"),
    # The query: decoded as Go decodes it, or refused.
    (create_with(CREATE + "?name=a&name=b"), 400, "'name' is repeated"),
    (create_with(CREATE + "?name=runner;x=1"), 400, "a ';'"),
    (create_with(CREATE + "?name=%zz"), 400, "malformed escape"),
    (create_with(CREATE + "?platform=linux"), 403, "'platform' is not one /containers/create takes"),
    (create_with(CREATE + "?name"), 400, "without a value"),
])
def test_path_forms_the_engine_would_read_differently_are_refused(gateway, raw, status, reason):
    got_status, message = refused(gateway, raw)
    assert got_status == status and reason in message, message


SMUGGLED = http_request("POST", CREATE, SPEC)


@pytest.mark.parametrize(("raw", "reason"), [
    # A create hidden behind an allowed ping, with bare-LF line ends (Go ends a line there, h11 too).
    (b"GET /v1.41/_ping HTTP/1.1\nHost: docker\n\n" + SMUGGLED, "bare CR or LF"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\nContent-Length: 0\n\n" + SMUGGLED, "bare CR or LF"),
    # Bare LF inside the request line: "GET /v1.41/_ping" then a second request line.
    (b"GET /v1.41/_ping\nPOST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}",
     "bare CR or LF"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\rX-A: b\r\n\r\n", "bare CR or LF"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nX-A: \x00\r\n\r\n", "control or non-ASCII byte"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: d\xc3\xb6cker\r\n\r\n", "control or non-ASCII byte"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nX-A: a\r\n b\r\n\r\n", "folded (obs-fold)"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nX-A: a\r\n\tb\r\n\r\n", "control or non-ASCII byte"),
    # Body framing two readers could disagree on.
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + SPEC, "Transfer-Encoding is refused"),
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding is refused"),
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\ntransfer-encoding : chunked\r\n\r\n",
     "not valid HTTP/1.1"),
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
     "Content-Length must appear once"),
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2, 2\r\n\r\n{}",
     "Content-Length must appear once"),
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: +2\r\n\r\n{}", "not valid HTTP"),
    (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
     "Expect is refused"),
    (b"\r\nGET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n", "not valid HTTP/1.1"),
    (b"GET /v1.41/_ping HTTP/1.0\r\n\r\n", "HTTP/1.0 is refused"),
    (b"GET /v1.41/_ping HTTP/1.1\r\n\r\n", "not valid HTTP/1.1"),  # no Host
    (b"GET  /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n", "not valid HTTP/1.1"),
    (b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nContent-Length: 5\r\n\r\nhello", "takes no body"),
])
def test_requests_two_parsers_could_split_differently_are_refused(gateway, raw, reason):
    status, message = refused(gateway, raw)
    assert status == 400 and reason in message, message


def test_a_request_pipelined_after_an_allowed_one_is_never_forwarded(gateway):
    engine, port = gateway
    answer = exchange(port, http_request("GET", "/v1.41/_ping") + SMUGGLED)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"OK")
    assert engine.received == [b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"]


def test_oversized_heads_and_bodies_are_refused(gateway):
    big_header = "X-Pad: " + "a" * (http_wire.MAX_HEAD + 10) + "\r\n"
    assert refused(gateway, http_request("GET", "/v1.41/_ping", headers="Host: d\r\n" + big_header))[0] == 431
    head = f"POST {CREATE} HTTP/1.1\r\nHost: docker\r\nContent-Length: {http_wire.MAX_BODY + 1}\r\n\r\n"
    status, message = refused(gateway, head.encode())
    assert status == 413 and "the body is over" in message


def test_a_slow_client_is_cut_off(gateway, monkeypatch):
    monkeypatch.setattr(http_wire, "HEAD_SECONDS", 0.3)
    monkeypatch.setattr(http_wire, "BODY_SECONDS", 0.3)
    engine, port = gateway
    for partial, reason in ((b"GET /v1.41/_ping HTTP/1.1\r\nHost: do", "the request head took longer"),
                            (http_request("POST", CREATE, SPEC)[:-10], "the body took longer")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(partial)
            status, message = answer_of(sock.recv(65536))
            assert status == 408 and reason in message and time.monotonic() - started < 3
    assert engine.received == []


def test_the_forwarded_request_is_the_gateways_own(gateway):
    """Whatever headers and spelling the client used, the engine sees one canonical form."""
    engine, port = gateway
    headers = "Host: evil\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n"
    exchange(port, http_request("GET", "/v1.41/images/json?filters=%7B%22reference%22%3A+%5B%22helical-runner"
                                       "%3Acpu%22%5D%7D&all=0&only_ids=0", headers=headers))
    assert engine.received == [b"GET /v1.41/images/json?only_ids=0&all=0&filters=%7B%22reference%22%3A%5B%22"
                               b"helical-runner%3Acpu%22%5D%7D HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"]


def test_h11_alone_reads_bare_lf_and_folded_heads_so_the_raw_head_is_checked_first():
    """Why http_wire checks the raw head before h11 parses it: h11 0.16 accepts both of these."""
    for head in (b"GET /v1.41/_ping HTTP/1.1\nHost: docker\n\n",
                 b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nX-A: a\r\n b\r\n\r\n"):
        connection = h11.Connection(h11.SERVER)
        connection.receive_data(head)
        assert isinstance(connection.next_event(), h11.Request)
        with pytest.raises(Refused):
            http_wire.parse_head(head)
