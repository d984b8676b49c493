"""HTTP/1.1 in and out: a client's request read strictly, the gateway's own request written by h11.

h11 parses the request head, but it is lenient where Go's reader (socket-proxy, dockerd) differs: it ends
lines at a bare LF, unfolds obs-fold continuation lines and merges repeated equal Content-Lengths. Go ends a
line at a bare LF too, so `GET /_ping` + bare-LF headers + a create would be one request here and two there.
The raw head is therefore checked first: printable ASCII lines joined by CRLF, nothing else; no folding; one
Content-Length; no Transfer-Encoding. Nothing the client sent is forwarded: the gateway writes its own head.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus

import h11

from docker_policy.refusal import Refused

MAX_HEAD = 64 * 1024
# A container spec is a few kB; a pack adds each dataset's path to the command and a label (a few hundred bytes
# per dataset: 8 MiB is over 20,000 datasets in one runner).
MAX_BODY = 8 << 20
# A client has this long to send its head, then its body: a slow client cannot hold a connection open.
HEAD_SECONDS = 10.0
BODY_SECONDS = 30.0
PRINTABLE = bytes(range(0x20, 0x7F))
# The name the gateway gives the engine in Host; dockerd does not read it.
UPSTREAM_HOST = "docker"


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    body: bytes


def check_raw_head(head: bytes) -> None:
    """Refuse a head two parsers could split differently: bare CR or LF, control bytes, folded lines,
    Content-Length twice or with a list, any Transfer-Encoding, Expect."""
    lines = head[:-4].split(b"\r\n")
    if any(line.translate(None, PRINTABLE) for line in lines):
        raise Refused("the request head has a bare CR or LF, or a control or non-ASCII byte: lines end with "
                      "CRLF and nothing else", HTTPStatus.BAD_REQUEST)
    if any(line[:1] in (b" ", b"\t") for line in lines):
        raise Refused("the request head has a folded (obs-fold) or indented line", HTTPStatus.BAD_REQUEST)
    names = [line.partition(b":")[0].lower() for line in lines[1:]]
    if b"transfer-encoding" in names:
        raise Refused("Transfer-Encoding is refused: send the body with one Content-Length",
                      HTTPStatus.BAD_REQUEST)
    lengths = [line.partition(b":")[2] for line in lines[1:] if line.partition(b":")[0].lower() == b"content-length"]
    if len(lengths) > 1 or b"," in b"".join(lengths):
        raise Refused("Content-Length must appear once, with one value", HTTPStatus.BAD_REQUEST)
    if b"expect" in names:
        raise Refused("Expect is refused: send the body with the head", HTTPStatus.BAD_REQUEST)


def parse_head(head: bytes) -> tuple[str, str, int]:
    """(method, target, Content-Length) of a checked head, parsed by h11 (token, target and field syntax)."""
    check_raw_head(head)
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    connection.receive_data(head)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as err:
        raise Refused(f"the request head is not valid HTTP/1.1: {err}", HTTPStatus.BAD_REQUEST) from err
    if not isinstance(event, h11.Request):
        raise Refused("the request head is incomplete", HTTPStatus.BAD_REQUEST)
    if event.http_version != b"1.1":
        raise Refused(f"HTTP/{event.http_version.decode()} is refused: send HTTP/1.1", HTTPStatus.BAD_REQUEST)
    length = int(dict(event.headers).get(b"content-length", b"0"))
    return event.method.decode("ascii"), event.target.decode("ascii"), length


async def read_request(reader: asyncio.StreamReader) -> Request:
    """One request from a client, or Refused. The reader's limit is MAX_HEAD (server.py)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
    except TimeoutError as err:
        raise Refused(f"the request head took longer than {HEAD_SECONDS:.0f} s", HTTPStatus.REQUEST_TIMEOUT) from err
    except asyncio.LimitOverrunError as err:
        raise Refused(f"the request head is over {MAX_HEAD} bytes",
                      HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE) from err
    method, target, length = parse_head(head)
    if length > MAX_BODY:
        raise Refused(f"the body is over {MAX_BODY} bytes", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    try:
        body = await asyncio.wait_for(reader.readexactly(length), BODY_SECONDS)
    except TimeoutError as err:
        raise Refused(f"the body took longer than {BODY_SECONDS:.0f} s", HTTPStatus.REQUEST_TIMEOUT) from err
    return Request(method, target, body)


def client_request(method: str, target: str, body: bytes | None = None,
                   upgrade: bool = False) -> tuple[h11.Connection, bytes]:
    """The gateway's own request, written by h11 (its request line, Host, a JSON body's type and length,
    Connection: close: one request per connection, so nothing can follow it unread), and the h11 connection
    that reads the answer."""
    headers = [("Host", UPSTREAM_HOST)]
    if upgrade:  # attach: the engine answers 101 and streams the container's output on this connection
        headers += [("Connection", "Upgrade, close"), ("Upgrade", "tcp")]
    else:
        headers.append(("Connection", "close"))
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    if body is not None or method != "GET":
        headers.append(("Content-Length", str(len(body or b""))))
    connection = h11.Connection(h11.CLIENT)
    data = connection.send(h11.Request(method=method, target=target, headers=headers))
    if body:
        data += connection.send(h11.Data(data=body))
    return connection, data + connection.send(h11.EndOfMessage())


def serialize_request(method: str, target: str, body: bytes | None = None, upgrade: bool = False) -> bytes:
    return client_request(method, target, body, upgrade)[1]


async def read_response(connection: h11.Connection, reader: asyncio.StreamReader,
                        limit: int) -> tuple[int, bytes]:
    """(status, body) of the engine's answer to `connection`'s request, read by h11, at most `limit` bytes."""
    status, body = 0, b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                raise ValueError(f"the engine's answer is over {limit} bytes")
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, body


def error_response(status: HTTPStatus, message: str) -> bytes:
    """An answer in the Docker API's error format, so docker-py raises APIError with this message."""
    body = json.dumps({"message": message}).encode()
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
