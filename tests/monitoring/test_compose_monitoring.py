"""compose/docker-compose.monitoring.yaml and compose/cadvisor.yaml (worker hosts run it too): pinned, healthy,
optional (profiles); what has no login is never published beyond this host."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.compose_config import rendered
from tests.monitoring.promql_names import REPO

FILES = (REPO / "compose" / "docker-compose.monitoring.yaml", REPO / "compose" / "cadvisor.yaml")
SERVICES = {"statsd-exporter", "redis-exporter", "prometheus", "alertmanager", "alertmanager-config", "grafana",
            "cadvisor"}
OPTIONAL = {"grafana", "cadvisor"}  # no image on machines without a registry, needed by nothing
ONE_SHOT = {"alertmanager-config"}  # runs to completion before the service that needs it
# The profile that starts each service (COMPOSE_PROFILES in .env); statsd-exporter is always there.
PROFILES = {"statsd-exporter": None, "redis-exporter": "monitoring", "prometheus": "monitoring",
            "alertmanager": "monitoring", "alertmanager-config": "monitoring", "grafana": "dashboards",
            "cadvisor": "cadvisor"}
# Published ports (host address, host port default, container port). Only Grafana has a login, so only Grafana
# follows BIND_ADDRESS; Prometheus, Alertmanager (its API silences alerts) and statsd-exporter stay on loopback;
# redis-exporter and cAdvisor are scraped on the stack's network and published nowhere on the core (a worker host
# publishes its cAdvisor: worker-host.yaml).
BIND = "${BIND_ADDRESS:-127.0.0.1}"
CONTRACT_PORTS = {
    "statsd-exporter": {"127.0.0.1:9102:9102"},  # StatsD itself is not published
    "redis-exporter": set(),
    "prometheus": {"127.0.0.1:9090:9090"},
    "alertmanager": {"127.0.0.1:9093:9093"},
    "alertmanager-config": set(),
    "grafana": {f"{BIND}:3000:3000"},
    "cadvisor": set(),
}


@pytest.fixture(scope="module")
def services() -> dict:
    return {name: service for path in FILES
            for name, service in yaml.safe_load(path.read_text(encoding="utf-8"))["services"].items()}


def test_services_are_the_contract_ones(services: dict) -> None:
    assert set(services) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES - ONE_SHOT))
def test_service_is_pinned_healthchecked_restarted_and_published_only_with_a_login(
    services: dict, name: str
) -> None:
    service = services[name]
    image = service["image"]
    assert re.search(r":v?\d+\.\d+\.\d+", image) and "latest" not in image, (
        f"{name}: unpinned {image}"
    )
    assert service.get("restart") == "always"
    assert {"test", "interval", "timeout", "retries", "start_period"} <= set(
        service["healthcheck"]
    )
    # The host port may come from .env (${GRAFANA_PORT:-3000}); the contract is its default.
    ports = {re.sub(r"\$\{[A-Z_]+_PORT:-(\d+)\}", r"\1", port) for port in service.get("ports", [])}
    assert ports == CONTRACT_PORTS[name]


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_a_one_shot_step_runs_once_without_network_on_the_airflow_images_python(services: dict, name: str) -> None:
    service = services[name]
    assert service["restart"] == "no" and service["network_mode"] == "none" and service["read_only"] is True
    assert service["cap_drop"] == ["ALL"] and "ports" not in service
    dockerfile = (REPO / "compose" / "airflow" / "Dockerfile").read_text(encoding="utf-8")
    assert f"FROM {service['image']} AS runtime" in dockerfile, "one pinned python image for the stack"


def test_optional_services_are_profiles_that_envexample_turns_on(services: dict) -> None:
    assert {name: (s.get("profiles") or [None])[0] for name, s in services.items()} == PROFILES
    example = (REPO / "config" / ".env.example").read_text(encoding="utf-8")
    (line,) = [line for line in example.splitlines() if line.startswith("COMPOSE_PROFILES=")]
    assert set(line.split("=", 1)[1].split(",")) >= {p for p in PROFILES.values() if p} | {"flower"}


def test_optional_services_are_needed_by_nothing(services: dict) -> None:
    for name, service in services.items():
        needs = set(service.get("depends_on", {}))
        assert needs & OPTIONAL == set(), f"{name} depends on {needs & OPTIONAL}"
        if name in OPTIONAL:
            assert not needs, f"{name} must start alone, depends on {needs}"
    assert set(services["redis-exporter"]["depends_on"]) == {"redis"}


def test_mounted_files_exist(services: dict) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: mounts missing {source}"


def test_redis_exporter_watches_the_celery_queues(services: dict) -> None:
    env = services["redis-exporter"]["environment"]
    # The keys are names.yaml's queues (config/names.env); tests/contract renders them from there.
    assert env["REDIS_EXPORTER_CHECK_SINGLE_KEYS"] == "${NAME_REDIS_QUEUE_KEYS}"


def test_no_secret_in_the_file() -> None:
    text = FILES[0].read_text(encoding="utf-8")
    assert "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD" in text
    assert not re.search(
        r"(?i)password[^$\n]*:\s*['\"]?\w{4,}['\"]?\s*$", text, re.MULTILINE
    )


def test_airflow_processes_start_after_the_statsd_exporter() -> None:
    # Airflow resolves the StatsD host once: a process started before the exporter sends nothing, ever.
    core = rendered()["services"]  # every Airflow service extends compose/airflow-common.yaml
    airflow = [name for name, service in core.items() if "AIRFLOW__METRICS__STATSD_HOST" in service.get("environment", {})
               and name != "airflow-init"]
    assert len(airflow) >= 6, airflow
    for name in airflow:
        needs = core[name]["depends_on"].get("statsd-exporter", {})
        assert (needs.get("condition"), needs.get("required")) == ("service_started", False), f"{name}: {needs}"


def test_cadvisor_holds_what_docs_security_says(services: dict) -> None:
    """docs/security.md, "cAdvisor": privileged, the host's root, /sys and /var/run (the Docker socket) read-only,
    published nowhere on the core (worker hosts publish it: compose/worker-host.yaml)."""
    cadvisor = services["cadvisor"]
    assert cadvisor["privileged"] is True and "ports" not in cadvisor
    assert {"/:/rootfs:ro", "/var/run:/var/run:ro", "/sys:/sys:ro"} <= set(cadvisor["volumes"])
