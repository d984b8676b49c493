"""A backup folder and its manifest: what `make backup` writes, and every check `make restore` makes on it before it
touches a database. Files only, no database.

    <BACKUP_DIR>/<timestamp>/airflow.dump    pg_dump's custom format
                             manifest.json   written last: versions, row counts, and the size and sha256 of each file
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "airflow.dump"


class BackupError(Exception):
    """A backup that cannot be restored, or a restore that would do harm: the message says why and what to do."""


def backup_name(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fernet_fingerprint(key: str) -> str:
    """Tells whether two Fernet keys are the same without storing the key (it decrypts connections and variables)."""
    return hashlib.sha256(f"helical-backup:{key}".encode()).hexdigest()[:16]


def new_manifest(folder: Path, *, created_at: datetime, versions: dict[str, str], row_counts: dict[str, int],
                 fernet: str, project: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "created_at": created_at.isoformat(timespec="seconds"),
        "compose_project": project,
        "versions": versions,
        "row_counts": row_counts,
        "fernet_key_fingerprint": fernet,
        "files": {DUMP: {"bytes": (folder / DUMP).stat().st_size, "sha256": sha256(folder / DUMP)}},
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_verified(folder: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is there, whole and unchanged; else BackupError naming the file."""
    if not folder.is_dir():
        raise BackupError(f"{folder}: no such backup folder (make backup writes <BACKUP_DIR>/<timestamp>/)")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder}: no {MANIFEST}: not a complete backup (make backup writes it last; a copy or a "
                          "backup that stopped early lacks it). Use another backup.") from None
    except json.JSONDecodeError as error:
        raise BackupError(f"{folder / MANIFEST} is not valid JSON ({error}): the backup is damaged. Use another "
                          "backup.") from None
    if manifest.get("format") != FORMAT or DUMP not in manifest.get("files", {}):
        raise BackupError(f"{folder / MANIFEST}: not a manifest this version reads (format {manifest.get('format')!r},"
                          f" expected {FORMAT} listing {DUMP})")
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"{path} is missing: the backup is partial. Use another backup.")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise BackupError(f"{path} has {size} bytes, the manifest says {expected['bytes']}: the file is truncated "
                              "or was changed. Use another backup.")
        if sha256(path) != expected["sha256"]:
            raise BackupError(f"{path}: its sha256 differs from the manifest's: the file is corrupt. Use another "
                              "backup.")
    return manifest


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def refusals(manifest: dict[str, Any], *, airflow_version: str, fernet: str) -> tuple[list[str], list[str]]:
    """(reasons to refuse whatever FORCE says, reasons to refuse unless FORCE) for restoring this backup here."""
    hard, soft = [], []
    made_by = manifest["versions"].get("airflow", "")
    if version_key(made_by) > version_key(airflow_version):
        hard.append(f"the backup was made by Airflow {made_by}, newer than this stack's {airflow_version}: restore it "
                    "with the Airflow image it was made with (a database is never migrated down)")
    if manifest.get("fernet_key_fingerprint") != fernet:
        soft.append("the backup's connections and variables were encrypted with another AIRFLOW_FERNET_KEY: put back "
                    "the .env saved with the backup (or its AIRFLOW_FERNET_KEY). With FORCE=1 they are restored "
                    "unreadable: set their secrets again")
    return hard, soft
