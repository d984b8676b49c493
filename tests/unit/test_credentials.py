"""config/make-env.sh generates every login; scripts/check-credentials.sh refuses to publish weak ones."""

import os
import re
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("_AIRFLOW_WWW_USER_PASSWORD", "FLOWER_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "POSTGRES_PASSWORD",
             "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY")
DOCUMENTED_DEFAULTS = {"", "admin", "airflow", "admin:admin"}


def make_env(path: Path) -> str:
    return subprocess.run([str(ROOT / "config" / "make-env.sh"), str(path)], check=True, capture_output=True,
                          text=True).stdout


def values(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return dict(pairs)


def test_a_fresh_env_holds_no_default_credential_and_prints_none(tmp_path):
    env = tmp_path / ".env"
    printed = make_env(env)
    found = values(env)
    assert {k: found[k] for k in GENERATED if found[k] in DOCUMENTED_DEFAULTS} == {}
    assert len({found[k] for k in GENERATED}) == len(GENERATED)  # each one drawn on its own
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert not any(found[k] in printed for k in GENERATED)


def test_a_later_run_keeps_every_value_and_generates_what_is_missing(tmp_path):
    env = tmp_path / ".env"
    make_env(env)
    before = values(env)
    env.write_text("".join(line + "\n" for line in env.read_text().splitlines() if not line.startswith("REDIS_PASSWORD=")))
    printed = make_env(env)
    after = values(env)
    assert "REDIS_PASSWORD" in printed and after["REDIS_PASSWORD"] not in ("", before["REDIS_PASSWORD"], *printed.split())
    assert {k: v for k, v in after.items() if k != "REDIS_PASSWORD"} == {k: v for k, v in before.items() if k != "REDIS_PASSWORD"}


def check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / "check-credentials.sh")], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True)


def test_publishing_with_a_default_login_is_refused_naming_it(tmp_path):
    make_env(tmp_path / ".env")
    strong = {k: v for k, v in values(tmp_path / ".env").items() if k in GENERATED}
    assert check({**strong, "BIND_ADDRESS": "0.0.0.0"}).returncode == 0
    assert check({**strong, "_AIRFLOW_WWW_USER_PASSWORD": "admin"}).returncode == 0  # loopback only: allowed
    refused = check({**strong, "BIND_ADDRESS": "0.0.0.0", "_AIRFLOW_WWW_USER_PASSWORD": "admin", "POSTGRES_PASSWORD": ""})
    assert refused.returncode == 1
    assert "_AIRFLOW_WWW_USER_PASSWORD POSTGRES_PASSWORD" in refused.stderr


def test_the_publish_check_covers_every_generated_password():
    generator = set(re.findall(r"\w+", (ROOT / "config" / "make-env.sh").read_text()))
    checker = set(re.findall(r"\w+", (ROOT / "scripts" / "check-credentials.sh").read_text()))
    passwords = {k for k in GENERATED if k.endswith("_PASSWORD")}
    assert passwords <= generator and passwords <= checker
