"""A Redis look-alike on a Docker network that records every byte it is sent, for tests of what a client would
send to an address a caller names (redis-exporter's /scrape?target=):

    with fake_redis("helical_default") as fake:
        ...                                   # make something connect to redis://<fake.name>:6379
        assert "AUTH" not in fake.received()
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

IMAGE = "python:3.12-slim-bookworm"  # the Airflow image's base: present wherever the stack is built
# Answers every command with an error and prints what it received, one repr() per read.
SERVER = """
import socket
server = socket.create_server(("0.0.0.0", 6379))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.settimeout(5)
    try:
        while data := conn.recv(65536):
            print(repr(data), flush=True)
            conn.sendall(b"-ERR not redis\\r\\n" * max(1, data.count(b"*")))
    except OSError:
        pass
    conn.close()
"""


@dataclass
class FakeRedis:
    name: str

    def received(self) -> list[str]:
        """Every read so far, as repr() of its bytes."""
        logs = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True, check=True).stdout
        return [line for line in logs.splitlines() if line != "listening"]


@contextmanager
def fake_redis(network: str) -> Iterator[FakeRedis]:
    fake = FakeRedis(f"hx-fake-redis-{uuid.uuid4().hex[:8]}")
    subprocess.run(["docker", "run", "-d", "--name", fake.name, "--network", network, IMAGE, "python", "-c", SERVER],
                   capture_output=True, text=True, check=True)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in subprocess.run(["docker", "logs", fake.name], capture_output=True, text=True).stdout:
            if time.monotonic() > deadline:
                raise AssertionError(f"{fake.name} never listened")
            time.sleep(0.5)
        yield fake
    finally:
        subprocess.run(["docker", "rm", "-f", fake.name], capture_output=True, check=False)
