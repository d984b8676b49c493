#!/usr/bin/env python3
"""Deletes what grows without bound and nobody reads after a while, and nothing else (docs/operations.md#retention):

- Airflow task logs (`*.log` under the logs folder) older than LOG_RETENTION_DAYS, then the folders they leave empty;
- staging leftovers in the results folder older than STAGING_RETENTION_DAYS: the hidden `.<name>.<32 hex>.tmp`
  entries (helical_runner.write.staging_name) a killed runner leaves in `<results>/` or `<results>/<run_id>/`.

Published results are never touched. 0 days keeps that kind forever. An entry's age is its newest modification
time, of anything inside it for a folder, so nothing still being written is old. Symbolic links are neither
followed nor deleted. The compose service `housekeeping` runs it every hour (compose/housekeeping.yaml).

    retention.py LOGS RESULTS [--every SECONDS]   one sweep, then one every SECONDS if given
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

DAY = 86400
# helical_runner.write.staging_name's shape (tests/contract checks they agree).
STAGING = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")
# Touched after every sweep: the service's healthcheck reads its age.
HEARTBEAT = Path("/tmp/housekeeping.last-sweep")


@dataclass(frozen=True)
class Retention:
    log_days: int
    staging_days: int


def retention_from(env: Mapping[str, str]) -> Retention:
    """The two settings of .env; a value that is not a whole number of days stops the service, naming it."""
    days = {}
    for name in ("LOG_RETENTION_DAYS", "STAGING_RETENTION_DAYS"):
        value = env.get(name, "").strip() or "0"
        if not value.isdigit():
            raise ValueError(f"{name}={value!r} in .env: a whole number of days, 0 to keep everything")
        days[name] = int(value)
    return Retention(days["LOG_RETENTION_DAYS"], days["STAGING_RETENTION_DAYS"])


def newest_mtime(path: Path) -> float:
    """The latest modification time of `path` and, for a folder, of everything in it (links not followed)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


def expired_logs(logs: Path, cutoff: float) -> tuple[list[Path], list[Path]]:
    """(log files last written before `cutoff`, folders to remove after them, deepest first), decided before anything
    is deleted: a folder goes when all it holds goes and it was itself last changed before `cutoff` (a folder made
    for a task that is starting is new), never `logs` itself."""
    files: list[Path] = []
    folders: list[Path] = []
    doomed: set[Path] = set()
    for folder, dirs, names in os.walk(logs, topdown=False):
        path = Path(folder)
        old = [path / n for n in names if n.endswith(".log") and not (path / n).is_symlink()
               and (path / n).lstat().st_mtime < cutoff]
        files += old
        if path != logs and len(old) == len(names) and all(path / d in doomed for d in dirs) \
                and path.lstat().st_mtime < cutoff:
            doomed.add(path)
            folders.append(path)
    return files, folders


def staging_leftovers(results: Path, cutoff: float) -> Iterator[Path]:
    """Staging entries in `results` and its run folders whose newest content is older than `cutoff`."""
    if not results.is_dir():
        return
    candidates = [*results.iterdir(), *(entry for run in results.iterdir() if run.is_dir() and not run.is_symlink()
                                        and not run.name.startswith(".") for entry in run.iterdir())]
    for entry in candidates:
        if STAGING.fullmatch(entry.name) and not entry.is_symlink() and newest_mtime(entry) < cutoff:
            yield entry


def remove(path: Path) -> int:
    """Deletes a file or a folder tree; returns the bytes freed (0 if it vanished meanwhile)."""
    try:
        if path.is_dir() and not path.is_symlink():
            size = sum(f.lstat().st_size for f in path.rglob("*") if not f.is_dir() or f.is_symlink())
            shutil.rmtree(path)
        else:
            size = path.lstat().st_size
            path.unlink()
    except FileNotFoundError:
        return 0
    return size


def remove_empty(folder: Path) -> bool:
    """False when something was written into the folder since the sweep looked: it stays."""
    try:
        folder.rmdir()
    except OSError:
        return False
    return True


def sweep(logs: Path, results: Path, keep: Retention, now: float) -> str:
    """One pass; returns what it deleted, in words."""
    said = []
    if keep.log_days:
        files, folders = expired_logs(logs, now - keep.log_days * DAY)
        freed = sum(remove(path) for path in files)
        removed = sum(remove_empty(folder) for folder in folders)
        said.append(f"{len(files)} task logs older than {keep.log_days} days ({freed / 1e6:.1f} MB), "
                    f"{removed} log folders they left empty")
    if keep.staging_days:
        leftovers = list(staging_leftovers(results, now - keep.staging_days * DAY))
        freed = sum(remove(path) for path in leftovers)
        said.append(f"{len(leftovers)} staging leftovers older than {keep.staging_days} days ({freed / 1e6:.1f} MB)"
                    + "".join(f"\n  {path}" for path in leftovers))
    return "deleted " + "; ".join(said) if said else "retention is 0 days for logs and staging: nothing deleted"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--every", type=float, help="seconds between sweeps; one sweep if not given")
    args = parser.parse_args(argv)
    try:
        keep = retention_from(os.environ)
    except ValueError as error:
        print(f"housekeeping: {error}", file=sys.stderr)
        return 2
    while True:
        print(f"housekeeping: {sweep(args.logs, args.results, keep, time.time())}", flush=True)
        HEARTBEAT.touch()
        if args.every is None:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
