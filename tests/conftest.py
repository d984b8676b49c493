"""One stack for every test that needs it (tests/e2e, tests/security): started on first use, stopped at the end."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from harness import DAG_ID, ROOT, Stack, make, prepare_folders


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    subprocess.run(["make", "runner-image"], cwd=ROOT, check=True)
    prepare_folders()
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
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=helical"],
                          capture_output=True, text=True, check=True).stdout.split()
    runners = subprocess.run(["docker", "ps", "-aq", "--filter", "label=helical.dag_id"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert not left and not runners, f"make down left containers behind: {left + runners}"
