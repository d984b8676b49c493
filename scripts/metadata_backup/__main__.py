"""make backup / make restore (docs/operations.md): the metadata database, dumped consistently with a manifest, and
restored onto an empty database only once the backup is proven whole, in one step that either happens or not.

    python -m metadata_backup --compose 'docker compose -f compose.yaml ...' backup BACKUP_DIR
    python -m metadata_backup --compose '...' restore BACKUP_DIR/<timestamp> [--force]

Reads AIRFLOW_FERNET_KEY and COMPOSE_PROJECT_NAME from the environment (make exports .env). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from metadata_backup.database import DB_NAME, SCRATCH, Compose
from metadata_backup.manifest import (
    DUMP,
    BackupError,
    backup_name,
    fernet_fingerprint,
    new_manifest,
    read_verified,
    refusals,
    write_manifest,
)


def say(message: str) -> None:
    print(f"metadata_backup: {message}", file=sys.stderr, flush=True)


def backup(compose: Compose, root: Path) -> Path:
    """Dump, prove the dump restores (its row counts go into the manifest), then publish the folder in one rename."""
    compose.ensure_postgres()
    now = datetime.now(UTC)
    final = root / backup_name(now)
    staging = root / f".{final.name}.partial"
    root.mkdir(parents=True, exist_ok=True)
    # Yours only: the dump holds password hashes, run configurations and (encrypted) connections.
    staging.mkdir(mode=0o700)
    try:
        busy = {s: n for s, n in compose.runs_by_state().items() if s in ("queued", "running")}
        if busy:
            say(f"warning: runs in flight {busy}: they are saved as they are now; a restore lets them resume or "
                "time out (docs/operations.md)")
        versions = compose.versions()
        compose.dump(staging / DUMP)
        check = f"{SCRATCH}_check"
        compose.load(staging / DUMP, check)
        try:
            counts = compose.table_counts(check)
        finally:
            compose.drop(check)
        write_manifest(staging, new_manifest(
            staging, created_at=now, versions=versions, row_counts=counts,
            fernet=fernet_fingerprint(os.environ.get("AIRFLOW_FERNET_KEY", "")),
            project=os.environ.get("COMPOSE_PROJECT_NAME", "")))
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"{final}: {counts.get('dag_run', 0)} runs, {counts.get('task_instance', 0)} task instances, "
        f"Airflow {versions['airflow']}. Keep .env with it, apart (its AIRFLOW_FERNET_KEY reads the connections).")
    return final


def restore(compose: Compose, folder: Path, force: bool) -> None:
    """Onto a database with no runs (or any, with force), only after the backup proved whole and loaded whole."""
    manifest = read_verified(folder)
    hard, soft = refusals(manifest, airflow_version=compose.airflow_version(),
                          fernet=fernet_fingerprint(os.environ.get("AIRFLOW_FERNET_KEY", "")))
    if hard or (soft and not force):
        raise BackupError("; ".join(hard + soft) + ".")
    compose.ensure_postgres()
    runs = sum(compose.runs_by_state().values())
    if runs and not force:
        raise BackupError(f"the metadata database already holds {runs} runs, and a restore replaces all of it: make "
                          "backup first to keep them, then make clean (which drops them) or make restore ... FORCE=1.")
    for reason in soft:
        say(f"warning (FORCE=1): {reason}")
    compose.load(folder / DUMP, SCRATCH)
    loaded, expected = compose.table_counts(SCRATCH), manifest["row_counts"]
    if loaded != expected:
        compose.drop(SCRATCH)
        raise BackupError(f"{folder}: the loaded database has rows {loaded}, the manifest says {expected}: use "
                          "another backup.")
    compose.stop_all_but_postgres()
    replaced = f"{DB_NAME}_replaced_{backup_name(datetime.now(UTC))}".lower()
    compose.swap_in(SCRATCH, replaced)
    # From here on the restore is done: what follows only tidies up.
    if runs:
        say(f"the database it replaced ({runs} runs) is kept as {replaced}; drop it when sure: "
            f"docker compose exec -T postgres dropdb -U {DB_NAME} {replaced}")
    else:
        try:
            compose.drop(replaced)
        except BackupError as error:
            say(f"warning: the empty database it replaced, {replaced}, is left: {error}")
    say(f"restored {folder}: {expected.get('dag_run', 0)} runs, {expected.get('task_instance', 0)} task instances "
        f"(Airflow {manifest['versions']['airflow']}, made {manifest['created_at']}); the stack starts next.")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="metadata_backup", description=__doc__.splitlines()[0])
    parser.add_argument("--compose", required=True, help="the compose command make uses, as one string")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("backup").add_argument("root", type=Path)
    undo = verbs.add_parser("restore")
    undo.add_argument("folder", type=Path)
    undo.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    compose = Compose(shlex.split(args.compose))
    try:
        if args.verb == "backup":
            backup(compose, args.root)
        else:
            restore(compose, args.folder, args.force)
    except BackupError as error:
        # Every refusal of a restore comes before its one-transaction swap, which happens whole or not at all.
        say(f"refused: {error} The database was not changed." if args.verb == "restore" else f"failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
