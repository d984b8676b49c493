"""Alertmanager's configuration as the stack renders it, checked by the real tools in the pinned image: amtool
check-config for every kind of .env, amtool's route test for every alert of alerts.yml, and the inhibitions in a
throwaway Alertmanager fed with alerts (amtool has no offline test for those). Docker, seconds, no stack."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from alertmanager_config.render_config import RECEIVERS, render
from tests.monitoring.promql_names import MONITORING, REPO

TEMPLATE = (MONITORING / "alertmanager" / "alertmanager.yml.tmpl").read_text(encoding="utf-8")
ALERTS = [rule for group in yaml.safe_load((MONITORING / "prometheus" / "rules" / "alerts.yml").read_text())["groups"]
          for rule in group["rules"] if "alert" in rule]
STACK = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())["global"]["external_labels"]["stack"]
SETTINGS = {
    "none": {},
    "webhook": {"ALERT_WEBHOOK_URL": "https://hooks.example.org/alertmanager/T0K3N"},
    "email": {"ALERT_EMAIL_TO": "ops@example.org", "ALERT_SMTP_SMARTHOST": "smtp.example.org:587",
              "ALERT_SMTP_FROM": "alerts@example.org", "ALERT_SMTP_AUTH_USERNAME": "alerts",
              "ALERT_SMTP_AUTH_PASSWORD": "s3cret", "ALERT_SMTP_REQUIRE_TLS": "true"},
}
SETTINGS["both"] = SETTINGS["webhook"] | SETTINGS["email"]


def alertmanager_image() -> str:
    compose = (REPO / "compose" / "docker-compose.monitoring.yaml").read_text(encoding="utf-8")
    found = re.search(r"image:\s*(prom/alertmanager:\S+)", compose)
    assert found, "compose/docker-compose.monitoring.yaml pins no prom/alertmanager image"
    return found.group(1)


def rendered(tmp_path: Path, env: dict[str, str]) -> Path:
    folder = tmp_path / "am"
    folder.mkdir(mode=0o755)
    (folder / "alertmanager.yml").write_text(render(TEMPLATE, env))
    (folder / "alertmanager.yml").chmod(0o644)  # Alertmanager's user reads it from a bind mount here
    return folder


def amtool(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "amtool", "-v",
                           f"{folder}:/am:ro", alertmanager_image(), *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("kind", sorted(SETTINGS))
def test_the_rendered_configuration_is_valid(tmp_path, kind):
    checked = amtool(rendered(tmp_path, SETTINGS[kind]), "check-config", "/am/alertmanager.yml")
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    assert f"{len(RECEIVERS)} receivers" in checked.stdout


def test_every_alert_routes_to_the_receiver_of_its_severity(tmp_path):
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in ALERTS}
    assert set(severities.values()) <= set(RECEIVERS), f"a severity with no receiver: {severities}"
    folder = rendered(tmp_path, {})
    for alert, severity in severities.items():
        routed = amtool(folder, "config", "routes", "test", "--config.file=/am/alertmanager.yml",
                        f"alertname={alert}", f"severity={severity}", f"stack={STACK}", "queue=cpu")
        assert routed.returncode == 0, routed.stderr
        assert routed.stdout.split() == [severity], (alert, routed.stdout)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory) -> Iterator[str]:
    """A throwaway Alertmanager on the configuration with no receiver; yields its container name."""
    folder = rendered(tmp_path_factory.mktemp("inhibit"), {})
    name = f"hx-test-alertmanager-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "-v", f"{folder}:/etc/alertmanager:ro",
                    alertmanager_image(), "--config.file=/etc/alertmanager/alertmanager.yml",
                    "--storage.path=/alertmanager", "--cluster.listen-address="], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["docker", "exec", name, "amtool", "--alertmanager.url=http://127.0.0.1:9093", "config",
                              "show"], capture_output=True, check=False).returncode:
            assert time.monotonic() < deadline, subprocess.run(["docker", "logs", name], capture_output=True,
                                                               text=True).stderr[-2000:]
            time.sleep(0.5)
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def amtool_in(container: str, *args: str) -> str:
    done = subprocess.run(["docker", "exec", container, "amtool", "--alertmanager.url=http://127.0.0.1:9093", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


# (scenario, the alerts firing together, those Alertmanager must hold back as (alertname, queue)). Each scenario is
# a stack of its own, so one scenario's alerts never inhibit another's.
SEVERITY = {rule["alert"]: rule["labels"]["severity"] for rule in ALERTS}
SCENARIOS = [
    ("dead-scheduler",
     [("AirflowSchedulerHeartbeatMissing", {}), ("CeleryQueueHasNoWorker", {"queue": "cpu"}),
      ("CeleryQueueBacklogGrowing", {"queue": "cpu"}), ("GpuQueueWithoutGpuWorker", {"queue": "gpu"}),
      ("AirflowTaskFailureRatioHigh", {"dag_id": "d"}), ("HelicalRunnerFailures", {"dataset": "a", "device": "cpu"}),
      ("AirflowDagRunDurationAboveUsual", {"dag_id": "d"})],
     {("CeleryQueueHasNoWorker", "cpu"), ("CeleryQueueBacklogGrowing", "cpu"), ("GpuQueueWithoutGpuWorker", "gpu"),
      ("AirflowTaskFailureRatioHigh", ""), ("HelicalRunnerFailures", ""), ("AirflowDagRunDurationAboveUsual", "")}),
    ("no-cpu-worker",
     [("CeleryQueueHasNoWorker", {"queue": "cpu"}), ("CeleryQueueBacklogGrowing", {"queue": "cpu"}),
      ("CeleryQueueNotDraining", {"queue": "cpu"}), ("CeleryQueueBacklogGrowing", {"queue": "gpu"})],
     {("CeleryQueueBacklogGrowing", "cpu"), ("CeleryQueueNotDraining", "cpu")}),
    ("no-gpu-worker",
     [("GpuQueueWithoutGpuWorker", {"queue": "gpu"}), ("CeleryQueueBacklogGrowing", {"queue": "gpu"})],
     {("CeleryQueueBacklogGrowing", "gpu")}),
    ("many-failures",
     [("AirflowTaskFailureRatioHigh", {"dag_id": "d"}), ("HelicalRunnerFailures", {"dataset": "a", "device": "cpu"}),
      ("HelicalRunnerFailures", {"dataset": "b", "device": "cpu"})],
     {("HelicalRunnerFailures", "")}),
    ("one-runner-failure", [("HelicalRunnerFailures", {"dataset": "a", "device": "cpu"})], set()),
]


def test_inhibitions_hold_back_what_a_firing_cause_explains(alertmanager):
    for scenario, alerts, _ in SCENARIOS:
        for name, labels in alerts:
            amtool_in(alertmanager, "alert", "add", name, f"severity={SEVERITY[name]}", f"stack={scenario}",
                      *(f"{k}={v}" for k, v in labels.items()))
    expected = {scenario: held for scenario, _, held in SCENARIOS}
    deadline = time.monotonic() + 30
    while True:  # the inhibitor sees new alerts a moment after the API took them
        seen = json.loads(amtool_in(alertmanager, "alert", "query", "-o", "json", "--active", "--inhibited"))
        held = {scenario: {(a["labels"]["alertname"], a["labels"].get("queue", "")) for a in seen
                           if a["labels"]["stack"] == scenario and a["status"]["inhibitedBy"]} for scenario in expected}
        if len(seen) == sum(len(alerts) for _, alerts, _ in SCENARIOS) and held == expected:
            break
        assert time.monotonic() < deadline, f"held back: {held}; expected: {expected}"
        time.sleep(1)
    # The cause itself is always sent.
    causes = [a for a in seen if a["labels"]["alertname"] == "AirflowSchedulerHeartbeatMissing"]
    assert causes and not causes[0]["status"]["inhibitedBy"]


def test_every_alert_name_an_inhibition_reads_is_an_alert():
    """A renamed alert would silently escape its inhibition: every name (or pattern) there matches an alert."""
    config = yaml.safe_load(TEMPLATE.replace("$receivers", "[]"))
    alerts = {rule["alert"] for rule in ALERTS}
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            name, op, value = re.fullmatch(r'(\w+)(=~|=)"(.*)"', matcher).groups()
            assert name == "alertname", matcher
            for alternative in value.split("|"):
                pattern = alternative if op == "=~" else re.escape(alternative)
                assert any(re.fullmatch(pattern, alert) for alert in alerts), f"{matcher}: no alert {alternative}"
