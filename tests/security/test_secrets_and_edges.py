"""Issue #20, classes 7 and 8, on the running stack: what a worker holds, what a caller of redis-exporter can make
it send, and what the cluster's API port speaks (docs/security.md)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests

from tests.compose_config import CORE_SECRETS
from tests.fake_redis import fake_redis
from tests.harness import MAKE_VARS, ROOT, compose, env_file

WORKERS = ("airflow-worker", "airflow-worker-gpu", "airflow-worker-gpu-test")


def environment(container: str) -> str:
    return "\n".join(json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Config.Env}}", container],
                                               capture_output=True, text=True, check=True).stdout))


def containers(*services: str) -> list[str]:
    return [c for service in services for c in compose("ps", "-q", service).split()]


def secrets_in(container: str) -> list[str]:
    env, values = environment(container), env_file()
    return [name for name in CORE_SECRETS if values.get(name) and values[name] in env]


def test_workers_and_flower_hold_none_of_the_cores_secrets(stack):
    workers = containers(*WORKERS)
    assert workers and {c: secrets_in(c) for c in workers} == {c: [] for c in workers}
    (flower,) = containers("flower")
    assert secrets_in(flower) == ["FLOWER_PASSWORD"]  # its own login, no database login or key
    # What a task process sees is the worker's environment: the same check from inside, with the values themselves.
    values = [env_file()[name] for name in CORE_SECRETS if env_file().get(name)]
    probe = "import os, sys; print(sum(v in '\\n'.join(os.environ.values()) for v in sys.argv[1:]))"
    assert subprocess.run(["docker", "exec", workers[0], "python", "-c", probe, *values], capture_output=True,
                          text=True, check=True).stdout.strip() == "0"
    # The check can fail: the core's own services hold what Airflow reads there.
    (api,) = containers("airflow-apiserver")
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"} <= set(secrets_in(api))


def test_a_worker_cannot_log_in_to_the_metadata_database(stack):
    """What a task can try with what its worker holds: Postgres asks for the password it does not have."""
    worker = containers("airflow-worker")[0]
    probe = ("import psycopg2\ntry:\n    psycopg2.connect(host='postgres', user='airflow', dbname='airflow', "
             "connect_timeout=10)\n    print('logged in')\nexcept psycopg2.OperationalError as err:\n    print(err)")
    seen = subprocess.run(["docker", "exec", worker, "python", "-c", probe], capture_output=True, text=True,
                          check=True).stdout
    assert "password" in seen and "logged in" not in seen, seen


def test_workers_serve_no_logs(stack):
    """No log server on :8793 (it would need [api] secret_key): the api-server reads task logs from the shared folder."""
    worker = containers("airflow-worker")[0]
    host = subprocess.run(["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "helical_default").IPAddress}}',
                           worker], capture_output=True, text=True, check=True).stdout.strip()
    (api,) = containers("airflow-apiserver")
    probe = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 8793), 5); print('open')\n"
             "except OSError as err:\n    print('closed', err)")
    seen = subprocess.run(["docker", "exec", api, "python", "-c", probe, host], capture_output=True, text=True,
                          check=True).stdout
    assert seen.startswith("closed") and "refused" in seen.lower(), seen


def exporter_page(path: str) -> str:
    """GET redis-exporter:9121<path> from a worker (on the stack's network: the exporter is published nowhere)."""
    worker = containers("airflow-worker")[0]
    return subprocess.run(["docker", "exec", worker, "curl", "--silent", "--max-time", "60",
                           f"http://redis-exporter:9121{path}"], capture_output=True, text=True, check=True).stdout


def test_redis_exporter_sends_no_password_to_an_address_a_caller_names(stack):
    assert re.search(r"^redis_up 1$", exporter_page("/metrics"), re.MULTILINE)  # it does log in to the broker
    with fake_redis("helical_default") as fake:  # on the stack's network, where the exporter reaches it
        for target in (f"redis://{fake.name}:6379", f"{fake.name}:6379", f"redis://default@{fake.name}:6379"):
            page = exporter_page(f"/scrape?target={target}")
            assert re.search(r"^redis_up 0$", page, re.MULTILINE), page[-500:]
        received = "\n".join(fake.received())
    assert "INFO" in received.upper(), received  # the exporter did talk to it...
    assert "AUTH" not in received.upper() and env_file()["REDIS_PASSWORD"] not in received, received  # ...but no login


def test_the_cluster_api_port_speaks_tls_only_and_serves_the_execution_api_only(stack):
    base = f"{MAKE_VARS['CLUSTER_BIND_ADDRESS']}:{env_file().get('CLUSTER_API_PORT') or 8090}"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{base}/execution/health", timeout=30)  # plain HTTP: no answer at all
    ca = str(ROOT / "certs" / "ca.crt")
    assert requests.get(f"https://{base}/execution/health", verify=ca, timeout=30).json() == {"status": "healthy"}
    for path in ("/api/v2/version", "/api/v2/dags", "/ui/", "/docs", "/auth/token"):  # not the UI, REST or login
        assert requests.get(f"https://{base}{path}", verify=ca, timeout=30).status_code == 404, path
    assert requests.get(f"https://{base}/execution/variables/x", verify=ca, timeout=30).status_code in (401, 403)
