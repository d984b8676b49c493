"""The gateway's server loop: one request per connection, read, checked, rewritten, forwarded to socket-proxy.

What socket-proxy receives is the gateway's own request (http_wire.serialize_request) built from the checked
Call and spec only, so it is byte for byte what was checked. The engine's answer is relayed as it comes: for
an attach, that is the 101 and then the container's output until it ends. The client's bytes after its request
are never forwarded: a runner has no stdin (OpenStdin is false), and anything there would only be a second
request in disguise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
from http import HTTPStatus

import h11

from docker_policy import strict_json
from docker_policy.config import Config, from_environment
from docker_policy.create_spec import canonical_spec
from docker_policy.endpoints import Call, route
from docker_policy.http_wire import (
    MAX_HEAD,
    Request,
    client_request,
    error_response,
    read_request,
    read_response,
    serialize_request,
)
from docker_policy.refusal import Refused

FULL_ID = re.compile(r"[0-9a-f]{64}")
# How long the engine may take to answer the gateway's own inspect, and how large that answer may be.
INSPECT_SECONDS = 30.0
MAX_INSPECT = 4 << 20
CONNECT_SECONDS = 10.0

log = logging.getLogger("docker-policy")


class Gateway:
    def __init__(self, config: Config, upstream_host: str, upstream_port: int) -> None:
        self.config = config
        self.upstream = (upstream_host, upstream_port)

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        peer = client_w.get_extra_info("peername")
        request = None
        try:
            request = await read_request(client_r)
            forward = await self.canonical_request(request)
            log.info("%s %s from %s", request.method, forward.split(b" ", 2)[1].decode()[:300], peer)
            await self.relay(forward, client_w)
        except Refused as err:
            what = f"{request.method} {request.target.partition('?')[0][:200]}" if request else "the request"
            log.warning("refused %s from %s: %s", what, peer, err)
            client_w.write(error_response(err.status, f"docker-policy refused {what}: {err}"))
        except (asyncio.IncompleteReadError, OSError, TimeoutError) as err:  # e.g. the healthcheck, which leaves
            log.debug("connection from %s ended: %s", peer, err)
        except Exception:  # a bug here must refuse the request, never forward it
            log.exception("refused a request from %s: the gateway failed", peer)
            client_w.write(error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "docker-policy failed; see its log"))
        await self.close(client_w)

    async def canonical_request(self, request: Request) -> bytes:
        """The request the gateway sends for this one, built from the checked values alone; or Refused."""
        call = route(request.method, request.target, self.config)
        if call.endpoint.body:
            spec = canonical_spec(strict_json.decode(request.body), self.config)
            return serialize_request(request.method, call.target(), strict_json.encode(spec))
        if request.body:
            raise Refused(f"{call.endpoint.path} takes no body", HTTPStatus.BAD_REQUEST)
        container_id = await self.resolve(call) if call.ref is not None else None
        return serialize_request(request.method, call.target(container_id), upgrade=call.endpoint.upgrade)

    async def resolve(self, call: Call) -> str:
        """The full ID of the container the client named, if it is a runner. Forwarding that ID, not the name
        or prefix, means the call reaches the container that was checked: a name or ID prefix can point at
        another container by the time the engine reads it (a runner removed, a prefix now unique)."""
        try:
            status, body = await asyncio.wait_for(self.inspect(call.inspect_target()), INSPECT_SECONDS)
            details = json.loads(body) if status == HTTPStatus.OK else {}
        except (OSError, TimeoutError, ValueError, h11.ProtocolError) as err:
            raise Refused(f"the engine could not be asked about {call.ref}: {err}", HTTPStatus.BAD_GATEWAY) from err
        if status == HTTPStatus.NOT_FOUND:
            raise Refused(f"no such container: {call.ref}", HTTPStatus.NOT_FOUND)
        container_id = details.get("Id") if isinstance(details, dict) else None
        if not isinstance(container_id, str) or not FULL_ID.fullmatch(container_id):
            raise Refused(f"the engine's answer about {call.ref} has no container ID (status {status})",
                          HTTPStatus.BAD_GATEWAY)
        if self.config.label not in ((details.get("Config") or {}).get("Labels") or {}):
            raise Refused(f"{call.ref} is not a runner container (no label {self.config.label})")
        return container_id

    async def inspect(self, target: str) -> tuple[int, bytes]:
        connection, data = client_request("GET", target)
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            writer.write(data)
            await writer.drain()
            return await read_response(connection, reader, MAX_INSPECT)
        finally:
            writer.close()

    async def relay(self, forward: bytes, client_w: asyncio.StreamWriter) -> None:
        """Send the canonical request; relay the engine's answer (an attach's stream included) to the end."""
        try:
            upstream_r, upstream_w = await asyncio.wait_for(asyncio.open_connection(*self.upstream), CONNECT_SECONDS)
        except (OSError, TimeoutError) as err:
            raise Refused(f"socket-proxy is unreachable: {err}", HTTPStatus.BAD_GATEWAY) from err
        try:
            upstream_w.write(forward)
            await upstream_w.drain()
            while chunk := await upstream_r.read(65536):
                client_w.write(chunk)
                await client_w.drain()
        finally:
            upstream_w.close()

    @staticmethod
    async def close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def serve(gateway: Gateway, port: int) -> None:
    server = await asyncio.start_server(gateway.handle, host="0.0.0.0", port=port, limit=MAX_HEAD)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # PID 1 in its container: no default handler
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on :%d, forwarding to %s:%d; runner images %s, network %s, user %s", port,
             *gateway.upstream, sorted(gateway.config.images), gateway.config.network, gateway.config.user)
    async with server:
        await stop.wait()


def main() -> None:
    logging.basicConfig(level=os.environ.get("DOCKER_POLICY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = os.environ.get("DOCKER_POLICY_UPSTREAM", "socket-proxy:2375").rpartition(":")
    gateway = Gateway(from_environment(os.environ), host, int(port))
    asyncio.run(serve(gateway, int(os.environ.get("DOCKER_POLICY_PORT", "2375"))))


if __name__ == "__main__":
    main()
