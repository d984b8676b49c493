"""RUNNER_LAUNCH_MODE has one default, settings.py's, which .env.example and the compose file repeat; the Helm
deployment's settings (kubernetes/base/settings.env) choose the other mode."""

from __future__ import annotations

import re
from pathlib import Path

from helical_workflow.settings import LAUNCH_MODES, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_compose_stack_launches_runners_on_docker_by_default():
    env = dict(line.split("=", 1) for line in (ROOT / "config" / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    compose = (ROOT / "compose" / "airflow-common.yaml").read_text()  # every Airflow service extends it
    assert env["RUNNER_LAUNCH_MODE"] == LAUNCH_MODES[0] == load_settings({}).launch_mode == "docker"
    assert re.findall(r"HELICAL_RUNNER_LAUNCH_MODE: \$\{RUNNER_LAUNCH_MODE:-(\w+)\}", compose) == ["docker"]


def test_the_kubernetes_deployment_launches_pods():
    settings = (ROOT / "kubernetes" / "base" / "settings.env").read_text()
    assert re.findall(r"^HELICAL_RUNNER_LAUNCH_MODE=(\w+)$", settings, re.M) == ["kubernetes"]
    assert set(LAUNCH_MODES) == {"docker", "kubernetes"}
