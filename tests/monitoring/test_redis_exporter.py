"""redis-exporter as the stack runs it (the compose file's own service, with a real Redis behind it): it logs in to
the broker, and a /scrape?target= naming any other address sends that address no password.

A compose project of its own (its own network, nothing published), with settings from config/make-env.sh; a fake
Redis on the same network records every byte it is sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fake_redis import IMAGE as PYTHON_IMAGE
from tests.fake_redis import FakeRedis, fake_redis
from tests.monitoring.promql_names import REPO

COMPOSE_FILE = REPO / "compose" / "docker-compose.monitoring.yaml"


def run(*args: str, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:6])}...: {done.stderr[-2000:]}")
    return done.stdout


class Stack:
    """redis and redis-exporter of the real compose files, in project `name`, and a fake Redis beside them."""

    fake: FakeRedis  # on the project's network, once it exists

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.network = name, f"{name}_default"
        env_file, override = folder / ".env", folder / "override.yaml"
        run(str(REPO / "config" / "make-env.sh"), str(env_file))
        # The runner network has a fixed name (the stack's): this project gets one of its own.
        override.write_text(json.dumps({"networks": {"runners": {"name": f"{name}-runners"}}}))
        self.compose = ["docker", "compose", "-p", name, "--env-file", str(env_file), "-f", str(REPO / "compose.yaml"),
                        "-f", str(override)]

    def get(self, url: str) -> str:
        """GET from inside the project's network (nothing of it is published)."""
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=30).read().decode())"
        return run("docker", "run", "--rm", "--network", self.network, PYTHON_IMAGE, "python", "-c", code)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(f"hx-test-exporter-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("exporter"))
    try:
        run(*stack.compose, "up", "-d", "--no-build", "redis-exporter")
        deadline = time.monotonic() + 90
        while True:
            try:
                stack.get("http://redis-exporter:9121/health")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        with fake_redis(stack.network) as stack.fake:
            yield stack
    finally:
        run(*stack.compose, "down", "-v", "--remove-orphans", check=False)


def redis_up(page: str) -> float:
    (value,) = re.findall(r"^redis_up (\S+)$", page, re.MULTILINE)
    return float(value)


def test_the_exporter_logs_in_to_the_broker(stack: Stack) -> None:
    assert redis_up(stack.get("http://redis-exporter:9121/metrics")) == 1


@pytest.mark.parametrize("target", ["redis://{fake}:6379", "{fake}:6379", "redis://user@{fake}:6379"])
def test_a_scrape_of_another_address_sends_it_no_password(stack: Stack, target: str) -> None:
    before = len(stack.fake.received())
    page = stack.get(f"http://redis-exporter:9121/scrape?target={target.format(fake=stack.fake.name)}")
    received = stack.fake.received()[before:]
    assert redis_up(page) == 0
    assert received, "the exporter never connected to the fake Redis: the test proves nothing"
    assert not [line for line in received if "AUTH" in line.upper()], received


def test_the_password_reaches_the_broker_only() -> None:
    """Statically: no REDIS_PASSWORD for the exporter, and the password file's one entry is REDIS_ADDR."""
    monitoring = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    exporter = monitoring["services"]["redis-exporter"]
    env = exporter["environment"]
    assert "REDIS_PASSWORD" not in env and "ports" not in exporter
    (mounted,) = exporter["configs"]
    assert mounted["target"] == env["REDIS_PASSWORD_FILE"]
    content = monitoring["configs"][mounted["source"]]["content"]
    assert json.loads(re.sub(r"\$\{REDIS_PASSWORD:\?[^}]*\}", "PW", content)) == {env["REDIS_ADDR"]: "PW"}
