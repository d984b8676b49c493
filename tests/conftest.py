"""One stack for every test that needs it (tests/e2e, tests/security): started on first use, stopped at the end."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.harness import DAG_ID, PROJECT, ROOT, Stack, env_file, make, prepare_folders


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    subprocess.run(["make", "runner-image"], cwd=ROOT, check=True)  # also writes .env on first use
    prepare_folders()
    # The checkout's own stack (`make up` as users run it, under its own project name) holds the ports the e2e
    # stack publishes: stopped, its volumes kept.
    own = env_file().get("COMPOSE_PROJECT_NAME") or PROJECT
    if own != PROJECT:
        make("down", COMPOSE_PROJECT_NAME=own)
    # A fresh metadata DB and broker: volumes left by an earlier stack hold other passwords and runs.
    make("clean")
    make("up", WORKERS="3")
    stack = Stack()
    deadline = time.monotonic() + 180
    while True:  # the dag-processor parses the DAG shortly after it starts
        try:
            stack.api.get_dag(DAG_ID)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)
    yield stack
    make("down")
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                          capture_output=True, text=True, check=True).stdout.split()
    runners = subprocess.run(["docker", "ps", "-aq", "--filter", "label=helical.dag_id"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert not left and not runners, f"make down left containers behind: {left + runners}"
