"""The metadata database, reached through `docker compose exec postgres`: the host needs no PostgreSQL tools, and the
dump and restore use the server's own pg_dump and pg_restore."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from metadata_backup.manifest import BackupError

# compose/docker-compose.yaml's POSTGRES_USER and POSTGRES_DB (tests/unit/test_backup.py checks they agree).
DB_USER = DB_NAME = "airflow"
# A restore is loaded here first, and renamed to DB_NAME only once it is whole.
SCRATCH = "airflow_restore"
# Rows counted into the manifest when backing up and compared after loading a restore.
COUNTED = ("dag", "dag_run", "task_instance", "slot_pool", "connection", "variable")


class Compose:
    """The stack's compose command (the files and project make uses), and what the backup asks of it."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)

    def run(self, *args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | int = subprocess.PIPE
            ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.command, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)

    def checked(self, *args: str, what: str) -> str:
        done = self.run(*args)
        if done.returncode:
            raise BackupError(f"{what} failed: {done.stderr.decode(errors='replace').strip()[-2000:]}")
        return done.stdout.decode()

    def ensure_postgres(self) -> None:
        """Postgres alone is started when the stack is down; a running one is left as it is."""
        if not self.checked("ps", "--status", "running", "-q", "postgres", what="docker compose ps").strip():
            self.checked("up", "-d", "--wait", "postgres", what="starting postgres")

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.checked("exec", "-T", "postgres", "psql", "-U", DB_USER, "-d", database, "-v", "ON_ERROR_STOP=1",
                            "-AtX", "-c", sql, what=f"psql on {database}").strip()

    def table_counts(self, database: str) -> dict[str, int]:
        """Rows of each COUNTED table that exists in `database`."""
        present = self.psql("SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                            f" AND relname IN ({', '.join(repr(t) for t in COUNTED)})", database).split()
        if not present:
            return {}
        counts = self.psql(" UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in sorted(present)), database)
        return {name: int(count) for name, count in (line.split("|") for line in counts.splitlines())}

    def runs_by_state(self, database: str = DB_NAME) -> dict[str, int]:
        if self.psql("SELECT to_regclass('public.dag_run') IS NOT NULL", database) != "t":
            return {}
        rows = self.psql("SELECT state, count(*) FROM dag_run GROUP BY state", database)
        return {state: int(count) for state, count in (line.split("|") for line in rows.splitlines())}

    def versions(self) -> dict[str, str]:
        return {"postgres_server": self.psql("SHOW server_version"),
                "pg_dump": self.checked("exec", "-T", "postgres", "pg_dump", "--version", what="pg_dump").strip(),
                "airflow": self.airflow_version(),
                "alembic_revision": self.psql("SELECT version_num FROM alembic_version", DB_NAME)}

    def airflow_version(self) -> str:
        """The Airflow of the stack's image (not of a running container: the stack may be down)."""
        config = json.loads(self.checked("config", "--format", "json", what="docker compose config"))
        image = config["services"]["airflow-scheduler"]["image"]
        done = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c",
                               "import importlib.metadata as m; print(m.version('apache-airflow'))"],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise BackupError(f"cannot read the Airflow version of {image} ({done.stderr.strip()[-300:]}): make images")
        return done.stdout.strip()

    def dump(self, target: Path) -> None:
        """pg_dump's custom format: one consistent snapshot of the database, whatever runs meanwhile."""
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            done = self.run("exec", "-T", "postgres", "pg_dump", "-U", DB_USER, "-d", DB_NAME, "-Fc", stdout=out)
        if done.returncode:
            raise BackupError(f"pg_dump failed: {done.stderr.decode(errors='replace').strip()[-2000:]}")

    def load(self, dump: Path, database: str) -> None:
        """Into a new, empty `database`, in one transaction: a dump that fails part way leaves nothing behind."""
        self.drop(database)
        self.psql(f'CREATE DATABASE "{database}" OWNER "{DB_USER}"')
        with dump.open("rb") as data:
            done = self.run("exec", "-T", "postgres", "pg_restore", "-U", DB_USER, "-d", database,
                            "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges", stdin=data)
        if done.returncode:
            self.drop(database)
            raise BackupError(f"pg_restore refused {dump}: {done.stderr.decode(errors='replace').strip()[-1500:]}. "
                              "The dump is damaged: use another backup.")

    def drop(self, database: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{database}"')

    def stop_all_but_postgres(self) -> None:
        running = self.checked("ps", "--status", "running", "--services", what="docker compose ps").split()
        others = [service for service in running if service != "postgres"]
        if others:
            self.checked("stop", *others, what="stopping the stack")

    def swap_in(self, database: str, replaced: str) -> None:
        """`database` becomes DB_NAME and DB_NAME becomes `replaced`, both or neither (one transaction)."""
        self.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DB_NAME}'")
        self.checked("exec", "-T", "postgres", "psql", "-U", DB_USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-X",
                     "-1", "-c", f'ALTER DATABASE "{DB_NAME}" RENAME TO "{replaced}"',
                     "-c", f'ALTER DATABASE "{database}" RENAME TO "{DB_NAME}"', what="swapping the databases")
