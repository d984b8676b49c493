"""Who holds which secret, and what is published where, on the model `docker compose config` resolves from the real
files (docs/security.md keeps to these): the core alone, the core in cluster mode, and a worker host from the
worker.env that `make worker-env` writes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.compose_config import CLUSTER_FILE, CORE_SECRETS, ROOT, env_values, names_env, rendered

WORKERS = ("airflow-worker", "airflow-worker-gpu", "airflow-worker-gpu-test")
CLUSTER = "10.9.8.7"


def published(services: dict) -> dict[str, set[tuple[str, int, str]]]:
    """{service: {(host address, container port, protocol)}} of every service that publishes a port."""
    return {name: {(p.get("host_ip", "0.0.0.0"), int(p["target"]), p.get("protocol", "tcp")) for p in s["ports"]}
            for name, s in services.items() if s.get("ports")}


def secrets_in(service: dict) -> list[str]:
    """The core secrets whose values appear anywhere in a service's environment."""
    values = " ".join(str(v) for v in (service.get("environment") or {}).values())
    return [name for name in CORE_SECRETS if env_values()[name] in values]


def test_with_a_public_bind_address_only_what_has_a_login_is_published_there():
    services = rendered(BIND_ADDRESS="0.0.0.0")["services"]
    assert published(services) == {
        "airflow-apiserver": {("0.0.0.0", 8080, "tcp")},  # login (FAB), 401 without
        "flower": {("0.0.0.0", 5555, "tcp")},  # basic auth
        "grafana": {("0.0.0.0", 3000, "tcp")},  # admin login
        "prometheus": {("127.0.0.1", 9090, "tcp")},  # no login: this host only
        "alertmanager": {("127.0.0.1", 9093, "tcp")},  # no login, and its API silences alerts
        "statsd-exporter": {("127.0.0.1", 9102, "tcp")},
    }


def test_in_cluster_mode_worker_hosts_reach_the_broker_the_execution_api_and_statsd_only():
    services = rendered(CLUSTER_FILE, CLUSTER_BIND_ADDRESS=CLUSTER)["services"]
    on_cluster = {name: {p for p in ports if p[0] == CLUSTER} for name, ports in published(services).items()}
    assert {name: ports for name, ports in on_cluster.items() if ports} == {
        "redis": {(CLUSTER, 6380, "tcp")},  # the TLS port; the plain 6379 stays inside
        "airflow-execution-api": {(CLUSTER, 8080, "tcp")},
        "statsd-exporter": {(CLUSTER, 9125, "udp")},
    }
    api = services["airflow-execution-api"]
    assert api["command"][:3] == ["api-server", "--apps", "execution"] and "--ssl-cert" in api["command"]
    assert published(services)["airflow-apiserver"] == {("127.0.0.1", 8080, "tcp")}
    assert "postgres" not in published(services)


@pytest.mark.parametrize("files", [(), (CLUSTER_FILE,)], ids=["core", "cluster"])
def test_the_cores_workers_hold_none_of_the_cores_secrets(files):
    services = rendered(*files, CLUSTER_BIND_ADDRESS=CLUSTER if files else "")["services"]
    assert {name: secrets_in(services[name]) for name in WORKERS} == {name: [] for name in WORKERS}
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].endswith("@redis:6379/1")
    assert "--skip-serve-logs" in services["airflow-worker"]["command"]
    assert secrets_in(services["flower"]) == ["FLOWER_PASSWORD"]  # its own login, and no database or key
    # ...while the core's own services keep what Airflow reads there (docs/security.md names the code).
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert set(secrets_in(services[name])) >= {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET"}


@pytest.fixture(scope="module")
def worker_host(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict]:
    """worker.env as `make worker-env` writes it, and a worker host's model rendered from it alone."""
    folder = tmp_path_factory.mktemp("worker-host")
    (folder / "certs").mkdir()
    (folder / "certs" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    core = {"PATH": os.environ["PATH"], **env_values(), "CLUSTER_BIND_ADDRESS": CLUSTER}
    subprocess.run([str(ROOT / "config" / "make-worker-env.sh"), str(folder / "worker.env")], cwd=folder, env=core,
                   check=True, capture_output=True)
    text = (folder / "worker.env").read_text()
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    # What make worker-host sets (Makefile, WORKER_HOST_ENV, and the shared names), and nothing of the core's .env.
    host = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PROJECT_DIR": str(ROOT), **names_env(),
            "COMPOSE_PROFILES": "cadvisor", "COMPOSE_PROJECT_NAME": "helical-host2", "HELICAL_HOST_NAME": "host2",
            "HELICAL_RUNNER_NETWORK": "helical-host2_runners", "WORKERS": "1", "WORKER_QUEUE": "cpu",
            "WORKER_NODE": "cpu"}
    done = subprocess.run(["docker", "compose", "--env-file", str(folder / "worker.env"), "-f", "compose/worker-host.yaml",
                           "config", "--format", "json"], cwd=ROOT, env=host, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return values, json.loads(done.stdout)


def test_worker_env_holds_the_broker_password_and_no_core_secret(worker_host):
    values, _ = worker_host
    assert [name for name in CORE_SECRETS if name in values] == []
    assert [name for name in CORE_SECRETS if env_values()[name] in "\n".join(values.values())] == []
    assert values["REDIS_PASSWORD"] == env_values()["REDIS_PASSWORD"]


def test_a_worker_host_reaches_the_core_over_tls_only_and_holds_no_core_secret(worker_host):
    _, model = worker_host
    services = model["services"]
    for name in ("airflow-worker", "cluster-check"):
        env = services[name]["environment"]
        assert secrets_in(services[name]) == [], name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("rediss://")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"https://{CLUSTER}:8090/execution/"
        assert env["AIRFLOW__API__SSL_CA_FILE"] == env["AIRFLOW__CELERY__SSL_CACERT"]
        assert env["AIRFLOW__API__CLIENT_USE_PUBLIC_CERTS"] == "false"
    worker = services["airflow-worker"]["environment"]
    backend, broker = worker["AIRFLOW__CELERY__RESULT_BACKEND"], worker["AIRFLOW__CELERY__BROKER_URL"]
    # The same server and password as the broker, db 1, the server checked against the cluster CA.
    assert backend == broker.removesuffix("/0") + "/1?ssl_cert_reqs=required&ssl_ca_certs=" + worker["AIRFLOW__API__SSL_CA_FILE"]
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in worker
