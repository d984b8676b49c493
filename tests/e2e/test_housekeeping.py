"""Retention on the live stack (docs/operations.md#retention): the housekeeping service, as compose runs it (root with
only DAC_OVERRIDE, no network, the logs and results folders), deletes an old task log with the folders it leaves
empty and an old staging leftover, and keeps a new log and a published result however old."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.harness import E2E, compose

HEX = "0123456789abcdef" * 2


def write(path: Path, days_old: float, text: str = "") -> Path:
    """A file (or, without text, a folder) last changed `days_old` days ago, its new parent folders too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if text:
        path.write_text(text)
    else:
        path.mkdir()
    age(path, days_old)
    return path


def age(path: Path, days_old: float) -> None:
    then = time.time() - days_old * 86400
    os.utime(path, (then, then))


def test_housekeeping_deletes_old_logs_and_staging_leftovers_and_keeps_results(stack):
    state = json.loads(compose("ps", "--format", "json", "housekeeping").splitlines()[0])
    assert state["Health"] == "healthy", state
    old_run = E2E / "logs" / "dag_id=e2e_retention" / "run_id=old"
    write(old_run / "task_id=t" / "attempt=1.log", 40, "a log from long ago\n")
    for folder in (old_run / "task_id=t", old_run):
        age(folder, 40)
    new_log = write(E2E / "logs" / "dag_id=e2e_retention" / "run_id=new" / "task_id=t" / "attempt=1.log", 0, "today\n")
    run = E2E / "results" / "e2e_retention"
    leftover = write(run / f".ds.{HEX}.tmp", 5)  # a killed runner's staging folder
    published = write(run / "ds" / "metrics.json", 400, "{}\n")
    age(run / "ds", 400)

    said = compose("exec", "-T", "-e", "LOG_RETENTION_DAYS=30", "-e", "STAGING_RETENTION_DAYS=2", "housekeeping",
                   "python", "/app/retention.py", "/logs", "/results")
    print(f"\n{said.strip()}")
    assert not old_run.exists() and not leftover.exists(), said
    assert new_log.exists() and published.exists(), said
    assert f"/results/e2e_retention/.ds.{HEX}.tmp" in said
