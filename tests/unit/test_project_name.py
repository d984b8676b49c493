"""config/make-env.sh names the compose project once per checkout, so two checkouts on one host never share volumes,
and an .env older than the setting keeps the name its volumes already have (docs/operations.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checkout(where: Path) -> Path:
    """The config folder of a checkout at `where` (make-env.sh derives from its own location)."""
    (where / "config").mkdir(parents=True)
    for name in ("make-env.sh", ".env.example"):
        shutil.copy2(ROOT / "config" / name, where / "config" / name)
    return where


def make_env(where: Path) -> str:
    return subprocess.run([str(where / "config" / "make-env.sh"), str(where / ".env")], check=True,
                          capture_output=True, text=True).stdout


def project(where: Path) -> str:
    (line,) = [line for line in (where / ".env").read_text().splitlines() if line.startswith("COMPOSE_PROJECT_NAME=")]
    return line.split("=", 1)[1]


def test_each_checkout_gets_its_own_project_name_once(tmp_path):
    first, second = checkout(tmp_path / "a" / "helical"), checkout(tmp_path / "b" / "helical")
    make_env(first)
    make_env(second)
    assert re.fullmatch(r"helical-[0-9a-f]{8}", project(first)) and re.fullmatch(r"helical-[0-9a-f]{8}", project(second))
    assert project(first) != project(second)
    named = project(first)
    make_env(first)  # later runs keep it
    assert project(first) == named


def test_an_env_from_before_the_setting_keeps_the_name_its_volumes_have(tmp_path):
    where = checkout(tmp_path / "old")
    make_env(where)
    env = where / ".env"
    env.write_text("".join(line + "\n" for line in env.read_text().splitlines()
                           if not line.startswith("COMPOSE_PROJECT_NAME=")))
    said = make_env(where)
    assert project(where) == "helical" and "COMPOSE_PROJECT_NAME=helical" in said


def test_an_emptied_name_is_derived_again(tmp_path):
    where = checkout(tmp_path / "c")
    make_env(where)
    named = project(where)
    env = where / ".env"
    env.write_text(env.read_text().replace(f"COMPOSE_PROJECT_NAME={named}", "COMPOSE_PROJECT_NAME="))
    make_env(where)
    assert project(where) == named
