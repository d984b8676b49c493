"""compose/housekeeping/retention.py: what a sweep deletes (old task logs, old staging leftovers) and everything it
keeps (new logs, other files, published results, links). The service itself: tests/e2e/test_housekeeping.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from housekeeping.retention import DAY, Retention, expired_logs, retention_from, staging_leftovers, sweep

NOW = time.time()
HEX = "0123456789abcdef" * 2


def make(path: Path, days_old: float, content: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    age(path, days_old)
    return path


def age(path: Path, days_old: float) -> None:
    then = NOW - days_old * DAY
    os.utime(path, (then, then), follow_symlinks=False)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    old_run = root / "dag_id=d" / "run_id=old"
    make(old_run / "task_id=a" / "attempt=1.log", 40)
    make(old_run / "task_id=b" / "attempt=1.log", 40)
    make(root / "dag_id=d" / "run_id=mixed" / "task_id=a" / "attempt=1.log", 40)
    make(root / "dag_id=d" / "run_id=mixed" / "task_id=a" / "attempt=2.log", 1)
    make(root / "dag_id=d" / "run_id=kept" / "task_id=a" / "notes.txt", 40)  # not a log: kept, and its folders
    make(root / "dag_processor" / "2024-01-01" / "dag.py.log", 40)
    (root / "dag_id=d" / "run_id=starting" / "task_id=a").mkdir(parents=True)  # a task about to write its log
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if "starting" not in str(folder):
            age(folder, 40)
    return root


def test_old_logs_go_with_the_folders_they_leave_empty_and_nothing_else(logs):
    files, folders = expired_logs(logs, NOW - 30 * DAY)
    assert {str(p.relative_to(logs)) for p in files} == {
        "dag_id=d/run_id=old/task_id=a/attempt=1.log", "dag_id=d/run_id=old/task_id=b/attempt=1.log",
        "dag_id=d/run_id=mixed/task_id=a/attempt=1.log", "dag_processor/2024-01-01/dag.py.log"}
    assert {str(p.relative_to(logs)) for p in folders} == {
        "dag_id=d/run_id=old/task_id=a", "dag_id=d/run_id=old/task_id=b", "dag_id=d/run_id=old",
        "dag_processor/2024-01-01", "dag_processor"}
    # Deepest first: each folder is empty when its turn comes.
    assert not [(a, b) for i, a in enumerate(folders) for b in folders[i + 1:] if a in b.parents]


def test_a_sweep_deletes_exactly_that(logs, tmp_path):
    said = sweep(logs, tmp_path / "results", Retention(log_days=30, staging_days=0), NOW)
    assert "4 task logs older than 30 days" in said and "5 log folders" in said
    assert tree(logs) == {
        "dag_id=d", "dag_id=d/run_id=mixed", "dag_id=d/run_id=mixed/task_id=a",
        "dag_id=d/run_id=mixed/task_id=a/attempt=2.log", "dag_id=d/run_id=kept", "dag_id=d/run_id=kept/task_id=a",
        "dag_id=d/run_id=kept/task_id=a/notes.txt", "dag_id=d/run_id=starting", "dag_id=d/run_id=starting/task_id=a"}


def test_links_are_neither_followed_nor_deleted(logs, tmp_path):
    outside = make(tmp_path / "elsewhere" / "precious.log", 400)
    link = logs / "dag_id=d" / "link.log"
    link.symlink_to(outside)
    (logs / "dag_id=d" / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    sweep(logs, tmp_path / "results", Retention(log_days=1, staging_days=0), NOW)
    assert outside.exists() and link.is_symlink() and (logs / "dag_id=d" / "linked-folder").is_symlink()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    make(root / "run1" / f".pbmc.{HEX}.tmp" / "embeddings.h5ad", 5)  # a killed runner's staging folder
    age(root / "run1" / f".pbmc.{HEX}.tmp", 5)
    make(root / "run1" / f".pbmc.failed.json.{HEX}.tmp", 5)  # a staged file (write_atomically)
    make(root / f".write-probe.{HEX}.tmp", 5, content="")  # ensure_writable's probe, at the top
    make(root / "run1" / f".busy.{HEX}.tmp" / "embeddings.h5ad", 0)  # still being written: new content
    age(root / "run1" / f".busy.{HEX}.tmp", 5)
    make(root / "run1" / "pbmc" / "metrics.json", 400)  # published: never deleted, however old
    make(root / "run1" / "summary.json", 400)
    make(root / "run1" / ".hidden.tmp", 400)  # hidden, but not a staging name
    make(root / "loadtest" / "20240101" / f"x.{HEX}.tmp", 400)  # not hidden
    make(root / "run1" / "pbmc" / f".deep.{HEX}.tmp", 400)  # inside a published dataset: not the runner's
    return root


def test_only_old_staging_leftovers_of_the_runner_are_found(results):
    found = {str(p.relative_to(results)) for p in staging_leftovers(results, NOW - 2 * DAY)}
    assert found == {f"run1/.pbmc.{HEX}.tmp", f"run1/.pbmc.failed.json.{HEX}.tmp", f".write-probe.{HEX}.tmp"}
    assert set(staging_leftovers(results, NOW - 10 * DAY)) == set()


def test_results_are_never_deleted_and_zero_days_keeps_everything(results, logs):
    before_results, before_logs = tree(results), tree(logs)
    assert "nothing deleted" in sweep(logs, results, Retention(log_days=0, staging_days=0), NOW)
    assert (tree(results), tree(logs)) == (before_results, before_logs)
    sweep(logs, results, Retention(log_days=0, staging_days=2), NOW)
    assert before_results - tree(results) == {f"run1/.pbmc.{HEX}.tmp", f"run1/.pbmc.{HEX}.tmp/embeddings.h5ad",
                                              f"run1/.pbmc.failed.json.{HEX}.tmp", f".write-probe.{HEX}.tmp"}
    assert tree(logs) == before_logs


@pytest.mark.parametrize(("env", "expected"), [
    ({}, Retention(0, 0)),
    ({"LOG_RETENTION_DAYS": "30", "STAGING_RETENTION_DAYS": "2"}, Retention(30, 2)),
    ({"LOG_RETENTION_DAYS": " ", "STAGING_RETENTION_DAYS": "0"}, Retention(0, 0)),
])
def test_the_settings_are_whole_days(env, expected):
    assert retention_from(env) == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "thirty", "30d"])
def test_a_setting_that_is_not_days_is_refused_by_name(value):
    with pytest.raises(ValueError, match=f"LOG_RETENTION_DAYS={value!r} in .env"):
        retention_from({"LOG_RETENTION_DAYS": value})
