"""docker-policy: the workers' Docker API endpoint. Checks container creates (policy.py), then hands every
request to socket-proxy, which allows only the paths the DockerOperator calls and the data/results/models
bind mounts, and is the only service that mounts the Docker socket (docs/security.md).

One request per connection (the upstream is asked to close after answering), so no second request can ride
an already checked connection unread. An attach is the exception: once the engine answers 101 the connection
is a raw stream of the container's output, in both directions, as the Docker API defines it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
from http import HTTPStatus

from policy import Policy, from_environment

MAX_HEAD = 64 * 1024
# A container spec is a few kB; nothing the workers send is larger (image builds and uploads are not allowed).
MAX_BODY = 1024 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection"}

log = logging.getLogger("docker-policy")


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The request line and the header fields of an HTTP/1.1 request head."""
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    fields = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"malformed header line {line!r}")
        fields.append((name.strip(), value.strip()))
    return request_line, fields


def forwarded_head(request_line: str, fields: list[tuple[str, str]], upgrade: bool) -> bytes:
    """The head sent upstream: the client's, asking the upstream to close the connection after its answer."""
    kept = [f"{name}: {value}" for name, value in fields if name.lower() not in HOP_BY_HOP]
    kept.append("Connection: Upgrade, close" if upgrade else "Connection: close")
    return ("\r\n".join([request_line, *kept]) + "\r\n\r\n").encode("latin-1")


def error_response(status: HTTPStatus, message: str) -> bytes:
    """An answer in the Docker API's error format, so docker-py raises APIError with this message."""
    body = json.dumps({"message": message}).encode()
    head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


class DockerPolicyProxy:
    def __init__(self, policy: Policy, upstream_host: str, upstream_port: int) -> None:
        self.policy = policy
        self.upstream = (upstream_host, upstream_port)

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        peer = client_w.get_extra_info("peername")
        try:
            await self.serve_one(client_r, client_w, peer)
        except asyncio.IncompleteReadError as err:  # the healthcheck connects and sends nothing
            log.log(logging.INFO if err.partial else logging.DEBUG, "connection from %s ended: %s", peer, err)
        except (asyncio.LimitOverrunError, ConnectionError, ValueError) as err:
            log.info("connection from %s ended: %s", peer, err)
        finally:
            client_w.close()

    async def serve_one(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, peer: object) -> None:
        request_line, fields = parse_head(await client_r.readuntil(b"\r\n\r\n"))
        method, target, _version = request_line.split(" ", 2)
        path = target.split("?", 1)[0]
        headers = {name.lower(): value for name, value in fields}
        if "transfer-encoding" in headers:
            client_w.write(error_response(HTTPStatus.LENGTH_REQUIRED, "docker-policy: chunked bodies are refused"))
            return
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            client_w.write(error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "docker-policy: body too large"))
            return
        body = await client_r.readexactly(length)
        refusal = self.policy.refusal(method, path, body)
        container = self.policy.target_container(path)
        if not refusal and container and not self.policy.is_runner(await asyncio.to_thread(self.labels_of, container)):
            refusal = f"{container} is not a runner container (no label {self.policy.label})"
        if refusal:
            log.warning("refused %s %s from %s: %s", method, path, peer, refusal)
            client_w.write(error_response(HTTPStatus.FORBIDDEN, f"docker-policy refused {method} {path}: {refusal}"))
            return
        upgrade = "upgrade" in headers and "upgrade" in headers.get("connection", "").lower()
        upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
        try:
            upstream_w.write(forwarded_head(request_line, fields, upgrade) + body)
            await upstream_w.drain()
            if upgrade:
                response_head = await upstream_r.readuntil(b"\r\n\r\n")
                client_w.write(response_head)
                if response_head.split(b" ", 2)[1] == b"101":
                    await self.stream(client_r, client_w, upstream_r, upstream_w)
                    return
            await pipe(upstream_r, client_w)
        finally:
            upstream_w.close()

    def labels_of(self, container: str) -> dict[str, str] | None:
        """The labels of a container as the engine reports them; None when it does not exist (blocking: it runs
        in a thread, once per call on a container)."""
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            connection.request("GET", f"/containers/{container}/json")
            response = connection.getresponse()
            if response.status != HTTPStatus.OK:
                return None
            return json.loads(response.read())["Config"].get("Labels") or {}
        finally:
            connection.close()

    @staticmethod
    async def stream(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                     upstream_r: asyncio.StreamReader, upstream_w: asyncio.StreamWriter) -> None:
        """An attach: the container's output until it ends; the client's input, if any, meanwhile."""
        to_upstream = asyncio.create_task(pipe(client_r, upstream_w))
        try:
            await pipe(upstream_r, client_w)
        finally:
            to_upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await to_upstream


async def serve(proxy: DockerPolicyProxy, port: int) -> None:
    server = await asyncio.start_server(proxy.handle, host="0.0.0.0", port=port, limit=MAX_HEAD)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # PID 1 in its container: no default handler
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on :%d, forwarding to %s:%d; runner images %s, networks %s", port, *proxy.upstream,
             sorted(proxy.policy.images), sorted(proxy.policy.networks))
    async with server:
        await stop.wait()


def main() -> None:
    logging.basicConfig(level=os.environ.get("DOCKER_POLICY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = os.environ.get("DOCKER_POLICY_UPSTREAM", "socket-proxy:2375").rpartition(":")
    proxy = DockerPolicyProxy(from_environment(dict(os.environ)), host, int(port))
    asyncio.run(serve(proxy, int(os.environ.get("DOCKER_POLICY_PORT", "2375"))))


if __name__ == "__main__":
    main()
