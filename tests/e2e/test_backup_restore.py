"""make backup / make restore on the live stack (docs/operations.md#backup-and-restore): after a run, a backup;
damaged copies of it are refused with a clear error and leave the database as it was; then `make clean` drops
everything and `make restore` brings back the run, its task instances, a pool, a connection and a variable, read
through the REST API. Runs last in `make test` (it replaces the stack's volumes); the tests run in file order.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from loadtest.client import fetch_token
from tests.harness import DAG_ID, MAKE_VARS, compose, env_file, make, make_captured

POOL = {"name": "e2e_backup_pool", "slots": 3, "description": "made before the backup"}
VARIABLE = {"key": "e2e_backup_variable", "value": "encrypted with the Fernet key of .env"}
CONNECTION = {"connection_id": "e2e_backup_connection", "conn_type": "http", "host": "lab.example.org",
              "login": "scientist", "password": "p4ss-w0rd", "port": 8443}


def api(stack) -> requests.Session:
    session, login = requests.Session(), env_file()
    token = fetch_token(stack.url, login.get("_AIRFLOW_WWW_USER_USERNAME") or "admin", login["_AIRFLOW_WWW_USER_PASSWORD"])
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def state(stack, run_id: str) -> dict[str, Any]:
    """What the restore must bring back, as the REST API shows it."""
    session, v2 = api(stack), f"{stack.url}/api/v2"
    (run,) = stack.api.list_runs(DAG_ID, run_id)
    pool = session.get(f"{v2}/pools/{POOL['name']}", timeout=30).json()
    connection = session.get(f"{v2}/connections/{CONNECTION['connection_id']}", timeout=30).json()
    return {
        "run": {k: run[k] for k in ("dag_run_id", "state", "start_date", "end_date", "conf")},
        "task_instances": sorted((ti["task_id"], ti["map_index"], ti["state"], ti["try_number"])
                                 for ti in stack.task_instances(run_id)),
        "pool": {k: pool[k] for k in ("name", "slots", "description")},
        "variable": session.get(f"{v2}/variables/{VARIABLE['key']}", timeout=30).json()["value"],
        "connection": {k: connection[k] for k in ("conn_type", "host", "login", "port")},
    }


@pytest.fixture(scope="module")
def backed_up(stack) -> dict[str, Any]:
    """A finished run, a pool, a variable and a connection, then `make backup`: {folder, run_id, before}."""
    run_id = stack.trigger("backup", device="cpu", data="synthetic_counts.h5ad", max_cells=30)
    assert stack.wait(run_id) == "success", stack.explain(run_id)
    session, v2 = api(stack), f"{stack.url}/api/v2"
    for path, body in (("pools", POOL), ("variables", VARIABLE), ("connections", CONNECTION)):
        created = session.post(f"{v2}/{path}", json=body, timeout=30)
        assert created.status_code in (200, 201), created.text
    before = state(stack, run_id)
    root = Path(MAKE_VARS["BACKUP_DIR"])
    started = time.monotonic()
    make("backup")
    print(f"\nmake backup took {time.monotonic() - started:.1f} s")
    (folder,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert folder.stat().st_mode & 0o777 == 0o700 and (folder / "airflow.dump").stat().st_mode & 0o777 == 0o600
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["row_counts"]["dag_run"] >= 1 and manifest["versions"]["airflow"], manifest
    return {"folder": folder, "run_id": run_id, "before": before}


def flip_a_byte(folder: Path) -> None:
    dump = bytearray((folder / "airflow.dump").read_bytes())
    dump[len(dump) // 2] ^= 0xFF
    (folder / "airflow.dump").write_bytes(bytes(dump))


def truncate_and_rewrite_the_manifest(folder: Path) -> None:
    """A dump cut short whose manifest was written after it: every checksum matches, pg_restore must refuse."""
    from metadata_backup.manifest import sha256

    with (folder / "airflow.dump").open("r+b") as dump:
        dump.truncate(dump.seek(0, 2) // 2)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["airflow.dump"] = {"bytes": (folder / "airflow.dump").stat().st_size,
                                         "sha256": sha256(folder / "airflow.dump")}
    (folder / "manifest.json").write_text(json.dumps(manifest))


# Live, the three ways a backup is damaged (tests/unit/test_backup.py has the rest): a corrupt file, a partial
# backup, and a dump cut short whose checksums match, which only pg_restore's one transaction stops.
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped byte": (flip_a_byte, "its sha256 differs from the manifest's: the file is corrupt"),
    "missing dump": (lambda folder: (folder / "airflow.dump").unlink(), "airflow.dump is missing: the backup is partial"),
    "truncated dump, matching manifest": (truncate_and_rewrite_the_manifest, "pg_restore refused"),
}


def databases() -> set[str]:
    return set(compose("exec", "-T", "postgres", "psql", "-U", "airflow", "-d", "postgres", "-AtXc",
                       "SELECT datname FROM pg_database").split())


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_backup_is_refused_and_the_database_left_as_it_was(stack, backed_up, damage, tmp_path):
    copy = tmp_path / backed_up["folder"].name
    shutil.copytree(backed_up["folder"], copy)
    spoil, reason = DAMAGE[damage]
    spoil(copy)
    # FORCE=1: the only thing standing between the damaged backup and the live database is the restore's checks.
    refused = make_captured("restore", BACKUP=str(copy), FORCE="1")
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert "metadata_backup: refused: " in refused.stdout and reason in refused.stdout, refused.stdout[-3000:]
    assert "The database was not changed." in refused.stdout
    assert state(stack, backed_up["run_id"]) == backed_up["before"]  # the API still answers, with the same rows
    assert "airflow_restore" not in databases()


def test_a_restore_over_a_database_with_runs_is_refused_unless_forced(stack, backed_up):
    refused = make_captured("restore", BACKUP=str(backed_up["folder"]))
    assert refused.returncode != 0
    assert "the metadata database already holds" in refused.stdout and "FORCE=1" in refused.stdout, refused.stdout[-2000:]
    assert state(stack, backed_up["run_id"]) == backed_up["before"]


def test_make_clean_then_restore_brings_back_runs_pools_connections_and_variables(stack, backed_up):
    make("clean")
    started = time.monotonic()
    make("restore", BACKUP=str(backed_up["folder"]), WORKERS="3")
    print(f"\nmake restore (and the stack's start) took {time.monotonic() - started:.0f} s")
    assert state(stack, backed_up["run_id"]) == backed_up["before"]
    assert not {name for name in databases() if name.startswith("airflow_")}, databases()
    # The stack works on the restored database: a new run succeeds.
    run_id = stack.trigger("after_restore", device="cpu", data="synthetic_counts.h5ad", max_cells=30)
    assert stack.wait(run_id) == "success", stack.explain(run_id)
