"""scripts/metadata_backup: the manifest and every check a restore makes before touching a database. The dump, the
restore and their refusals on the real stack: tests/e2e/test_backup_restore.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metadata_backup.database import DB_NAME, DB_USER
from metadata_backup.manifest import (
    DUMP,
    MANIFEST,
    BackupError,
    backup_name,
    fernet_fingerprint,
    new_manifest,
    read_verified,
    refusals,
    write_manifest,
)
from tests.compose_config import compose_file

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = {"postgres_server": "16.4", "pg_dump": "pg_dump (PostgreSQL) 16.4", "airflow": "3.3.2",
            "alembic_revision": "d2f4e1b3c5a7"}
KEY = fernet_fingerprint("the-key")


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    folder = tmp_path / "20250101T000000Z"
    folder.mkdir()
    (folder / DUMP).write_bytes(bytes(range(256)) * 64)
    write_manifest(folder, new_manifest(folder, created_at=datetime(2025, 1, 1, tzinfo=UTC), versions=VERSIONS,
                                        row_counts={"dag_run": 3, "task_instance": 9}, fernet=KEY, project="helical"))
    return folder


def test_a_whole_backup_reads_back_its_manifest(backup):
    manifest = read_verified(backup)
    assert manifest["row_counts"] == {"dag_run": 3, "task_instance": 9} and manifest["versions"] == VERSIONS
    assert manifest["files"][DUMP]["bytes"] == 256 * 64


def refused(folder: Path) -> str:
    with pytest.raises(BackupError) as error:
        read_verified(folder)
    return str(error.value)


def test_a_flipped_byte_is_refused_as_corrupt(backup):
    data = bytearray((backup / DUMP).read_bytes())
    data[len(data) // 2] ^= 0x01
    (backup / DUMP).write_bytes(bytes(data))
    assert "sha256 differs from the manifest's: the file is corrupt" in refused(backup)


def test_a_truncated_dump_is_refused_naming_both_sizes(backup):
    with (backup / DUMP).open("r+b") as dump:
        dump.truncate(1000)
    assert f"{backup / DUMP} has 1000 bytes, the manifest says {256 * 64}: the file is truncated" in refused(backup)


def test_a_partial_backup_is_refused(backup, tmp_path):
    (backup / DUMP).unlink()
    assert f"{backup / DUMP} is missing: the backup is partial" in refused(backup)
    (backup / MANIFEST).unlink()
    assert "no manifest.json: not a complete backup" in refused(backup)
    assert "no such backup folder" in refused(tmp_path / "nowhere")


def test_a_damaged_or_foreign_manifest_is_refused(backup):
    (backup / MANIFEST).write_text('{"format": 1, "files": ')
    assert "is not valid JSON" in refused(backup)
    (backup / MANIFEST).write_text(json.dumps({"format": 2, "files": {}}))
    assert "not a manifest this version reads" in refused(backup)


def test_a_newer_airflow_is_refused_even_forced_and_another_key_unless_forced(backup):
    manifest = read_verified(backup)
    assert refusals(manifest, airflow_version="3.3.2", fernet=KEY) == ([], [])
    assert refusals(manifest, airflow_version="3.4.0", fernet=KEY) == ([], [])  # airflow-init migrates it up
    hard, _ = refusals(manifest, airflow_version="3.3.1", fernet=KEY)
    assert "made by Airflow 3.3.2, newer than this stack's 3.3.1" in hard[0]
    _, soft = refusals(manifest, airflow_version="3.3.2", fernet=fernet_fingerprint("another-key"))
    assert "another AIRFLOW_FERNET_KEY: put back the .env saved with the backup" in soft[0]


def test_the_manifest_never_holds_the_fernet_key(backup):
    assert "the-key" not in (backup / MANIFEST).read_text()
    assert fernet_fingerprint("the-key") != fernet_fingerprint("the-key2")


def test_backups_sort_by_time_in_their_names():
    assert backup_name(datetime(2025, 3, 9, 7, 5, 1, tzinfo=UTC)) == "20250309T070501Z"


def test_the_database_and_its_owner_are_the_ones_compose_creates():
    postgres = compose_file("docker-compose.yaml")["services"]["postgres"]
    assert (postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]) == (DB_USER, DB_NAME)
