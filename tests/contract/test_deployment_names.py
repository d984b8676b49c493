"""The deployment uses the shared names (names.yaml) as compose resolves it: the model `docker compose config`
renders from the real files and config/names.env, not what one file's text looks like. Copies that cannot read a
variable are generated (tests/contract/test_generated.py); what is checked here is that compose reads the names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helical_workflow import names
from tests.compose_config import compose_file, env_values, rendered

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict:
    return rendered()["services"]


@pytest.mark.parametrize(("service", "queue", "node"), [
    ("airflow-worker", names.CPU_QUEUE, names.CPU_QUEUE),
    ("airflow-worker-gpu", names.GPU_QUEUE, names.GPU_QUEUE),
    ("airflow-worker-gpu-test", names.GPU_QUEUE, f"{names.GPU_QUEUE}-test"),
])
def test_each_worker_consumes_its_queue_and_names_itself_after_it(services, service, queue, node):
    command = " ".join(services[service]["command"])
    assert f"--queues {queue} " in command, command
    # recording.yml, Flower's dashboards and the load test read the queue and the host from the node name:
    # <queue>[-test]@<host name>.<container hostname>.
    assert f"--celery-hostname {node}@core.%h" in command, command
    assert services[service]["environment"]["CELERY_QUEUE"] == node


def test_tasks_naming_no_queue_go_to_the_cpu_queue_and_metrics_to_statsd(services):
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == names.CPU_QUEUE
    assert (env["AIRFLOW__METRICS__STATSD_HOST"], env["AIRFLOW__METRICS__STATSD_PORT"]) == (
        names.STATSD_HOST, str(names.STATSD_PORT))
    assert env["AIRFLOW__METRICS__STATSD_PREFIX"] == names.AIRFLOW_STATSD_PREFIX
    assert names.STATSD_HOST in services  # the host is the exporter's service name


def test_the_runner_images_network_and_label_come_from_the_names(services):
    worker = services["airflow-worker"]["environment"]
    assert (worker["HELICAL_RUNNER_CPU_IMAGE"], worker["HELICAL_RUNNER_GPU_IMAGE"]) == (
        names.RUNNER_IMAGES[names.CPU_QUEUE], names.RUNNER_IMAGES[names.GPU_QUEUE])
    network = f"{env_values()['COMPOSE_PROJECT_NAME']}_{names.RUNNER_NETWORK_SUFFIX}"
    assert worker["HELICAL_DOCKER_NETWORK"] == network and worker["HELICAL_STATSD_HOST"] == names.STATSD_HOST
    policy = services["docker-policy"]["environment"]
    assert policy["DOCKER_POLICY_LABEL"] == names.RUNNER_LABEL and policy["DOCKER_POLICY_NETWORK"] == network
    assert policy["DOCKER_POLICY_IMAGES"].split(",") == list(names.RUNNER_IMAGES.values())
    (labels,) = [arg for arg in services["cadvisor"]["command"] if arg.startswith("--whitelisted_container_labels=")]
    assert names.RUNNER_LABEL in labels.split("=", 1)[1].split(",")


def test_the_queue_metrics_watch_the_workflows_queues(services):
    keys = services["redis-exporter"]["environment"]["REDIS_EXPORTER_CHECK_SINGLE_KEYS"]
    assert keys.split(",") == [f"db0={q}" for q in (names.CPU_QUEUE, names.GPU_QUEUE, names.CELERY_DEFAULT_QUEUE)]


def test_init_sets_the_pool_the_runner_tasks_take(services):
    assert services["airflow-init"]["environment"]["HELICAL_CPU_RUNNER_POOL"] == names.CPU_RUNNER_POOL


def test_the_cluster_file_repeats_the_brokers_command_exactly():
    core = compose_file("docker-compose.yaml")["services"]["redis"]["command"]
    cluster = compose_file("docker-compose.cluster.yaml")["services"]["redis"]["command"]
    assert cluster[:len(core)] == core and "--tls-port" in cluster[len(core):]


def test_worker_env_carries_every_setting_the_worker_host_reads():
    text = "\n".join((ROOT / "compose" / name).read_text() for name in ("worker-host.yaml", "airflow-common.yaml",
                                                                       "docker-api.yaml"))
    required = set(re.findall(r"\$\{(\w+):\?", text))
    script = (ROOT / "config" / "make-worker-env.sh").read_text()
    keys = set(re.search(r"KEYS=\(([^)]*)\)", script).group(1).split())
    set_by_make = {"PROJECT_DIR", "HELICAL_HOST_NAME", "HELICAL_RUNNER_NETWORK", "WORKER_QUEUE", "WORKER_NODE",
                   *(name for name in required if name.startswith("NAME_"))}  # config/names.env, read by make
    assert required - set_by_make <= keys, required - set_by_make - keys


def test_the_host_folders_have_one_default_each():
    text = (ROOT / "compose" / "airflow-common.yaml").read_text()
    for name, folder in (("DATA", "data"), ("RESULTS", "results"), ("MODELS", "models")):
        defaults = set(re.findall(rf"\$\{{HELICAL_{name}_DIR:-(.+?)\}}[:,\s\"]", text))
        defaults = {re.sub(r":\?[^}]*", "", d) for d in defaults}  # the first one also says how to fix it
        assert defaults == {f"${{PROJECT_DIR}}/{folder}"}, (name, defaults)


def test_docker_policy_expects_the_runner_the_workers_ask_for(services):
    """The gateway allows exactly the user, limits and folders RunnerOperator sends: the same .env settings,
    with the same defaults, as the workers' HELICAL_* variables."""
    worker = services["airflow-worker"]["environment"]
    policy = services["docker-policy"]["environment"]
    for name in ("UID", "MEMORY", "CPUS"):
        assert policy[f"DOCKER_POLICY_RUNNER_{name}"] == worker[f"HELICAL_RUNNER_{name}"]
    folders = [worker[f"HELICAL_{name}_DIR"] for name in ("DATA", "RESULTS", "MODELS")]
    assert policy["DOCKER_POLICY_RUNNER_FOLDERS"] == ",".join(folders)
