"""compose/docker-compose.monitoring.yaml and compose/cadvisor.yaml (worker hosts run it too): pinned, healthy,
bound to BIND_ADDRESS, optional (profiles)."""

from __future__ import annotations

import re

import pytest
import yaml

from promql_names import REPO

FILES = (REPO / "compose" / "docker-compose.monitoring.yaml", REPO / "compose" / "cadvisor.yaml")
SERVICES = {"statsd-exporter", "redis-exporter", "prometheus", "alertmanager", "alertmanager-config", "grafana",
            "cadvisor"}
OPTIONAL = {"grafana", "cadvisor"}  # no image on machines without a registry, needed by nothing
ONE_SHOT = {"alertmanager-config"}  # runs to completion before the service that needs it
# The profile that starts each service (COMPOSE_PROFILES in .env); statsd-exporter is always there.
PROFILES = {"statsd-exporter": None, "redis-exporter": "monitoring", "prometheus": "monitoring",
            "alertmanager": "monitoring", "alertmanager-config": "monitoring", "grafana": "dashboards",
            "cadvisor": "cadvisor"}
CONTRACT_PORTS = {
    "statsd-exporter": {"9102:9102"},  # StatsD itself is not published
    "redis-exporter": {"9121:9121"},
    "prometheus": {"9090:9090"},
    "alertmanager": {"9093:9093"},
    "alertmanager-config": set(),
    "grafana": {"3000:3000"},
    "cadvisor": {"8081:8080"},
}


@pytest.fixture(scope="module")
def services() -> dict:
    return {name: service for path in FILES
            for name, service in yaml.safe_load(path.read_text(encoding="utf-8"))["services"].items()}


def test_services_are_the_contract_ones(services: dict) -> None:
    assert set(services) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES - ONE_SHOT))
def test_service_is_pinned_healthchecked_restarted_and_local(
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
    ports = set()
    for port in service.get("ports", []):
        assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (
            f"{name}: {port} not bound to BIND_ADDRESS"
        )
        # The host port may come from .env (${GRAFANA_PORT:-3000}); the contract is its default.
        ports.add(re.sub(r"\$\{[A-Z_]+_PORT:-(\d+)\}", r"\1", port.removeprefix("${BIND_ADDRESS:-127.0.0.1}:")))
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
    assert env["REDIS_EXPORTER_CHECK_SINGLE_KEYS"] == "db0=cpu,db0=gpu,db0=default"


def test_no_secret_in_the_file() -> None:
    text = FILES[0].read_text(encoding="utf-8")
    assert "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD" in text
    assert not re.search(
        r"(?i)password[^$\n]*:\s*['\"]?\w{4,}['\"]?\s*$", text, re.MULTILINE
    )


def test_airflow_processes_start_after_the_statsd_exporter() -> None:
    # Airflow resolves the StatsD host once: a process started before the exporter sends nothing, ever.
    core = yaml.safe_load((REPO / "compose" / "docker-compose.yaml").read_text(encoding="utf-8"))["services"]
    airflow = [name for name, service in core.items() if "AIRFLOW__METRICS__STATSD_HOST" in service.get("environment", {})
               and name != "airflow-init"]
    assert len(airflow) >= 6, airflow
    for name in airflow:
        needs = core[name]["depends_on"].get("statsd-exporter")
        assert needs == {"condition": "service_started", "required": False}, f"{name}: {needs}"
