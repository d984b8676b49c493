"""Where make takes a setting from: the command line, then the environment (as compose users give it), then .env."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The Makefile with its config/ beside a .env made by hand (newer than .env.example, so make keeps it)."""
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    (tmp_path / "config").symlink_to(ROOT / "config")
    env = tmp_path / ".env"
    env.write_text("COMPOSE_PROFILES=monitoring,dashboards\nWORKERS=2\nBIND_ADDRESS=127.0.0.1\n")
    later = time.time() + 60
    os.utime(env, (later, later))
    return tmp_path


def setting(checkout: Path, name: str, *args: str, **environment: str) -> str:
    """The value make gives `name`, read by a rule added on the command line (--eval), not from the Makefile."""
    env = {"PATH": os.environ["PATH"], **environment}
    result = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-%: ; @echo '$($*)'",
                             f"print-{name}", *args], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_env_file_gives_the_value_when_nothing_else_does(checkout):
    assert setting(checkout, "COMPOSE_PROFILES") == "monitoring,dashboards"


def test_the_environment_wins_over_env_file_as_in_compose(checkout):
    assert setting(checkout, "COMPOSE_PROFILES", COMPOSE_PROFILES="monitoring,flower") == "monitoring,flower"
    assert setting(checkout, "WORKERS", WORKERS="0") == "0"
    # An empty value is a value: the core stack alone.
    assert setting(checkout, "COMPOSE_PROFILES", COMPOSE_PROFILES="") == ""


def test_the_command_line_wins_over_the_environment(checkout):
    assert setting(checkout, "WORKERS", "WORKERS=3", WORKERS="1") == "3"


def test_gpu_adds_its_profile_to_the_environments_profiles(checkout):
    assert setting(checkout, "COMPOSE_PROFILES", "GPU=1", COMPOSE_PROFILES="flower") == "flower,gpu"


def test_the_environment_reaches_the_recipes_as_make_resolved_it(checkout):
    script = checkout / "show.sh"
    script.write_text('#!/bin/sh\necho "$COMPOSE_PROFILES"\n')
    script.chmod(0o755)
    result = subprocess.run(["make", "-s", "--eval", "show: ; @./show.sh", "show"], cwd=checkout, text=True,
                            env={"PATH": os.environ["PATH"], "COMPOSE_PROFILES": "flower"}, capture_output=True)
    assert result.stdout.strip() == "flower", result.stderr
