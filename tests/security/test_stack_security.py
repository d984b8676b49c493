"""Logins and exposure of the running stack: generated credentials, no anonymous access, rotation by make up."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess

import pytest
import requests

from loadtest.client import AirflowApi, ApiError
from tests.harness import E2E, MAKE_VARS, ROOT, compose, env_file, make


def test_the_api_and_flower_refuse_anonymous_requests(stack):
    assert requests.get(f"{stack.url}/api/v2/dags", timeout=30).status_code == 401
    assert requests.get(f"{stack.flower}/api/workers", timeout=30).status_code == 401
    assert requests.get(f"{stack.flower}/api/workers", auth=stack.flower_auth, timeout=30).status_code == 200


def test_redis_wants_its_password_and_prometheus_cannot_be_stopped_remotely(stack):
    anonymous = subprocess.run(["docker", "exec", "-e", "REDISCLI_AUTH=", compose("ps", "-q", "redis").strip(),
                                "redis-cli", "ping"], capture_output=True, text=True)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    assert requests.post(f"{stack.prometheus}/-/quit", timeout=30).status_code != 200


def port_bindings(service: str) -> dict[str, list[str]]:
    container = compose("ps", "-q", service).strip()
    bindings = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .HostConfig.PortBindings}}", container],
                                         capture_output=True, text=True, check=True).stdout) or {}
    return {port: [b["HostIp"] for b in bound] for port, bound in bindings.items()}


def test_what_has_no_login_stays_on_this_host_and_worker_hosts_reach_three_ports(stack):
    cluster = MAKE_VARS["CLUSTER_BIND_ADDRESS"]  # the test stack runs in cluster mode (docs/scale-out.md)
    assert port_bindings("statsd-exporter") == {"9102/tcp": ["127.0.0.1"], "9125/udp": [cluster]}
    assert port_bindings("redis") == {"6380/tcp": [cluster]}  # the TLS port only, never the plain 6379
    assert port_bindings("airflow-execution-api") == {"8080/tcp": [cluster]}  # TLS, /execution only
    assert port_bindings("airflow-apiserver") == {"8080/tcp": ["127.0.0.1"]}  # BIND_ADDRESS: the UI never on cluster
    assert port_bindings("prometheus") == {"9090/tcp": ["127.0.0.1"]}  # no login: loopback whatever BIND_ADDRESS
    assert port_bindings("alertmanager") == {"9093/tcp": ["127.0.0.1"]}
    for service in ("postgres", "redis-exporter"):  # worker hosts need no database; Prometheus scrapes inside
        assert port_bindings(service) == {}, service


def test_the_published_broker_wants_tls_and_its_password(stack):
    def redis_cli(*args: str) -> str:
        done = subprocess.run(["docker", "run", "--rm", "-v", f"{ROOT / 'certs' / 'ca.crt'}:/ca.crt:ro",
                               "--entrypoint", "redis-cli", "redis:7.2-bookworm", "-h", MAKE_VARS["CLUSTER_BIND_ADDRESS"],
                               "-p", "6380", *args, "ping"], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    assert "PONG" not in redis_cli()  # plain text: no answer
    assert "NOAUTH" in redis_cli("--tls", "--cacert", "/ca.crt")
    assert "PONG" in redis_cli("--tls", "--cacert", "/ca.crt", "-a", env_file()["REDIS_PASSWORD"], "--no-auth-warning")


def test_changing_the_admin_password_in_env_and_make_up_applies_it(stack):
    env = ROOT / ".env"
    old = env_file()["_AIRFLOW_WWW_USER_PASSWORD"]
    new = secrets.token_hex(24)
    env.write_text(env.read_text().replace(f"_AIRFLOW_WWW_USER_PASSWORD={old}", f"_AIRFLOW_WWW_USER_PASSWORD={new}"))
    make("up", WORKERS="3")
    user = env_file().get("_AIRFLOW_WWW_USER_USERNAME") or "admin"
    with pytest.raises(ApiError, match="401"):
        AirflowApi(stack.url, user, old).get_dag("helical_model_workflow")
    stack.api = AirflowApi(stack.url, user, new)
    assert stack.api.get_dag("helical_model_workflow")["dag_id"] == "helical_model_workflow"


def test_runners_reach_statsd_and_nothing_else(stack):
    network = json.loads(subprocess.run(["docker", "network", "inspect", "helical_runners"], capture_output=True,
                                        text=True, check=True).stdout)[0]
    assert network["Internal"] is True  # no route out of the host
    members = {c["Name"] for c in network["Containers"].values()}
    assert [m for m in members if "statsd-exporter" not in m and not m.startswith("helical_model_workflow.")] == []
    probe = ("import socket, sys\nfor host in ('statsd-exporter', 'redis', 'postgres', 'airflow-apiserver'):\n"
             "    try: socket.getaddrinfo(host, 1); print(host, 'resolves')\n"
             "    except OSError: print(host, 'unknown')\n"
             "for address in sys.argv[1:]:\n"
             "    host, port = address.split(':')\n"
             "    try: socket.create_connection((host, int(port)), 3); print(address, 'connected')\n"
             "    except OSError: print(address, 'unreachable')")
    # By address too, as a hostile runner would: Redis and Postgres on the control network, and the internet.
    control = [f"{ip_on_default_network(service)}:{port}" for service, port in (("redis", 6379), ("postgres", 5432))]
    seen = subprocess.run(["docker", "run", "--rm", "--network", "helical_runners", "helical-runner:cpu", "python", "-c",
                           probe, *control, "1.1.1.1:53"], capture_output=True, text=True, check=True).stdout.split("\n")
    assert seen[:4] == ["statsd-exporter resolves", "redis unknown", "postgres unknown", "airflow-apiserver unknown"]
    assert seen[4:7] == [f"{address} unreachable" for address in (*control, "1.1.1.1:53")]


def ip_on_default_network(service: str) -> str:
    networks = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                          compose("ps", "-q", service).strip()], capture_output=True, text=True,
                                         check=True).stdout)
    return networks["helical_default"]["IPAddress"]


def test_runner_containers_are_locked_down(stack):
    # A failed runner is kept for `docker logs`: make one fail (a file that is not HDF5) and inspect it.
    broken = E2E / "data" / "security"
    broken.mkdir(exist_ok=True)
    (broken / "not_hdf5.h5ad").write_text("not an h5ad file")
    try:
        run_id = stack.trigger("lockdown", device="cpu", data="security")
        assert stack.wait(run_id) == "failed"
    finally:
        shutil.rmtree(broken)
    (kept,) = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=helical.run_id={run_id}"],
                             capture_output=True, text=True, check=True).stdout.split()
    inspected = json.loads(subprocess.run(["docker", "inspect", kept], capture_output=True, text=True,
                                          check=True).stdout)[0]
    assert inspected["Config"]["User"].split(":")[0] not in ("", "0", "root")  # never root, even when make runs as root
    host = inspected["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 512 and host["NanoCpus"] > 0 and host["Memory"] == host["MemorySwap"] > 0
    assert host["NetworkMode"] == "helical_runners"
    models = next(m for m in host["Mounts"] if m["Target"] == "/models")
    assert models["ReadOnly"] is True
