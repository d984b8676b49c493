"""The day-2 settings (alerts, retention, backups, the project name) have one default, in config/.env.example, that
compose and the Makefile repeat; the housekeeping service knows the runner's staging names (docs/operations.md)."""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from housekeeping.retention import STAGING

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ("ALERT_WEBHOOK_URL", "ALERT_EMAIL_TO", "ALERT_SMTP_SMARTHOST", "ALERT_SMTP_FROM", "ALERT_SMTP_AUTH_USERNAME",
            "ALERT_SMTP_AUTH_PASSWORD", "ALERT_SMTP_REQUIRE_TLS", "ALERTMANAGER_PORT", "LOG_RETENTION_DAYS",
            "STAGING_RETENTION_DAYS", "BACKUP_DIR")


def env_example() -> dict[str, str]:
    lines = (ROOT / "config" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def compose_defaults() -> dict[str, set[str]]:
    text = "\n".join(path.read_text() for path in (ROOT / "compose").glob("*.yaml"))
    found: dict[str, set[str]] = {}
    for name, default in re.findall(r"\$\{(\w+):-([^}$]*)\}", text):
        found.setdefault(name, set()).add(default)
    return found


@pytest.mark.parametrize("name", SETTINGS)
def test_each_setting_has_one_default_that_compose_repeats(name):
    example = env_example()
    assert name in example, f"config/.env.example lacks {name}"
    repeated = compose_defaults().get(name, {example[name]})
    assert repeated == {example[name]}, f"{name}: .env.example says {example[name]!r}, compose {repeated}"


def test_the_project_name_is_derived_and_compose_falls_back_to_its_own_name():
    assert env_example()["COMPOSE_PROJECT_NAME"] == ""  # make env derives one per checkout
    name = yaml.safe_load((ROOT / "compose.yaml").read_text())["name"]
    assert compose_defaults()["COMPOSE_PROJECT_NAME"] == {name}  # the runner network's, without .env


def test_the_makefile_falls_back_to_the_same_backup_folder():
    assert "$(or $(BACKUP_DIR),backups)" in (ROOT / "Makefile").read_text() and env_example()["BACKUP_DIR"] == "backups"


def runner_staging_name() -> Callable[[str], str]:
    """helical_runner.write.staging_name itself, taken out of write.py (which imports numpy and pandas)."""
    source = (ROOT / "runner" / "src" / "helical_runner" / "write.py").read_text()
    wanted = [node for node in ast.parse(source).body
              if (isinstance(node, ast.FunctionDef) and node.name == "staging_name")
              or (isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["STAGING_SUFFIX"])]
    assert len(wanted) == 2, "write.py's staging_name or STAGING_SUFFIX moved: update compose/housekeeping/retention.py"
    namespace: dict = {"uuid": uuid}
    exec(compile(ast.Module(wanted, type_ignores=[]), "write.py", "exec"), namespace)
    return namespace["staging_name"]


def test_housekeeping_recognises_every_staging_name_the_runner_makes_and_no_published_one():
    staging_name = runner_staging_name()
    for name in ("pbmc_part_a", "twins__a__x", "write-probe", "a.b", "x.0123456789abcdef0123456789abcdef"):
        assert STAGING.fullmatch(staging_name(name)), staging_name(name)
        assert not STAGING.fullmatch(name)
    for published in ("summary.json", "pbmc.failed.json", ".helical-cluster.json", "loadtest", ".hidden"):
        assert not STAGING.fullmatch(published)
