"""Files that cannot import the definitions repeat them: compose, .env.example, PromQL, dashboards, the Makefile,
the load test. Each must say what dags/helical_workflow/contract.py says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compose_config import compose_file
from helical_workflow import contract

ROOT = Path(__file__).resolve().parents[2]
# Celery's default queue: nothing should use it, so the queue metrics watch it too.
WATCHED_QUEUES = (*contract.QUEUES, "default")


def compose_services(name: str) -> dict:
    return compose_file(name)["services"]


def env_example() -> dict[str, str]:
    lines = (ROOT / "config" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize(("service", "queue", "node"), [
    ("airflow-worker", contract.CPU_QUEUE, "cpu"),
    ("airflow-worker-gpu", contract.GPU_QUEUE, "gpu"),
    ("airflow-worker-gpu-test", contract.GPU_QUEUE, "gpu-test"),
])
def test_each_worker_consumes_its_queue_and_names_itself_after_it(service, queue, node):
    command = compose_services("docker-compose.yaml")[service]["command"]
    assert re.search(rf"--queues {queue}(\s|$)", command), command
    # recording.yml, Flower's dashboards and the load test read the queue and the host from the node name:
    # <queue>[-test]@<host name>.<container hostname>.
    assert f'--celery-hostname "{node}@${{HELICAL_HOST_NAME:-core}}.%h"' in command and node.split("-")[0] == queue


def test_a_worker_host_runs_the_cores_worker_and_names_it_the_same_way():
    worker = compose_services("worker-host.yaml")["airflow-worker"]
    common = {"file": "${PROJECT_DIR}/compose/airflow-common.yaml", "service": "celery-worker"}
    assert worker["extends"] == common
    assert all(compose_services("docker-compose.yaml")[name]["extends"] == common
               for name in ("airflow-worker", "airflow-worker-gpu", "airflow-worker-gpu-test"))
    assert re.search(r'--queues \$\{WORKER_QUEUE:-cpu\} --celery-hostname "\$\{WORKER_NODE:-cpu\}@'
                     r'\$\{HELICAL_HOST_NAME:\?[^}]*\}\.%h"', worker["command"]), worker["command"]
    makefile = (ROOT / "Makefile").read_text()
    assert "WORKER_QUEUE=$(if $(filter cpu,$(QUEUE)),cpu,gpu) WORKER_NODE=$(QUEUE)" in makefile
    assert {contract.CPU_QUEUE, contract.GPU_QUEUE} == {"cpu", "gpu"}


def test_the_cluster_file_repeats_the_brokers_command_exactly():
    core = compose_services("docker-compose.yaml")["redis"]["command"]
    cluster = compose_services("docker-compose.cluster.yaml")["redis"]["command"]
    assert cluster[:len(core)] == core and "--tls-port" in cluster[len(core):]


# The files a worker host's compose project reads (worker-host.yaml includes or extends the others).
WORKER_HOST_FILES = ("worker-host.yaml", "airflow-common.yaml", "docker-api.yaml", "cadvisor.yaml")


def worker_env_keys() -> set[str]:
    script = (ROOT / "config" / "make-worker-env.sh").read_text()
    return set(re.search(r"KEYS=\(([^)]*)\)", script).group(1).split())


def test_worker_env_carries_every_setting_the_worker_host_reads():
    text = "\n".join((ROOT / "compose" / name).read_text() for name in WORKER_HOST_FILES)
    required = set(re.findall(r"\$\{(\w+):\?", text))
    set_by_make = {"PROJECT_DIR", "HELICAL_HOST_NAME", "HELICAL_RUNNER_NETWORK"}
    assert required - set_by_make <= worker_env_keys(), required - set_by_make - worker_env_keys()
    extended = {s["extends"]["file"].rsplit("/", 1)[-1] for s in compose_services("worker-host.yaml").values()
                if "extends" in s}
    assert extended <= set(WORKER_HOST_FILES), extended


def test_the_queue_metrics_watch_the_workflows_queues():
    exporter = compose_services("docker-compose.monitoring.yaml")["redis-exporter"]["environment"]
    assert exporter["REDIS_EXPORTER_CHECK_SINGLE_KEYS"] == ",".join(f"db0={q}" for q in WATCHED_QUEUES)
    recording = (ROOT / "monitoring" / "prometheus" / "rules" / "recording.yml").read_text()
    assert f'key=~"{"|".join(WATCHED_QUEUES)}"' in recording
    dashboard = json.loads((ROOT / "monitoring" / "grafana" / "dashboards" / "queues-workers.json").read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "queue"]
    assert variable["query"].split(",") == list(WATCHED_QUEUES)


def test_the_load_test_scales_the_queue_the_workflow_routes_to():
    scaling = (ROOT / "scripts" / "loadtest" / "scaling.py").read_text()
    (gpu, cpu) = re.search(r'queue = "(\w+)" if config\.device == "gpu" else "(\w+)"', scaling).groups()
    assert (gpu, cpu) == (contract.GPU_QUEUE, contract.CPU_QUEUE)


def test_the_runner_images_have_one_default():
    env = env_example()
    assert (env["RUNNER_CPU_IMAGE"], env["RUNNER_GPU_IMAGE"]) == (
        contract.RUNNER_IMAGES[contract.CPU_QUEUE], contract.RUNNER_IMAGES[contract.GPU_QUEUE])
    for name in ("airflow-common.yaml", "runner-images.yaml"):
        text = (ROOT / "compose" / name).read_text()
        defaults = set(re.findall(r"\$\{RUNNER_CPU_IMAGE:-([^}]+)\}", text))
        gpu_defaults = set(re.findall(r"\$\{RUNNER_GPU_IMAGE:-([^}]+)\}", text))
        assert defaults == {env["RUNNER_CPU_IMAGE"]} and gpu_defaults == {env["RUNNER_GPU_IMAGE"]}, name
    makefile = (ROOT / "Makefile").read_text()
    assert "helical-runner:cpu" not in makefile and "$(RUNNER_CPU_IMAGE)" in makefile


def test_the_host_folders_have_one_default_each():
    text = "\n".join((ROOT / "compose" / name).read_text() for name in ("airflow-common.yaml", "docker-compose.yaml"))
    for name, folder in (("DATA", "data"), ("RESULTS", "results"), ("MODELS", "models")):
        defaults = set(re.findall(rf"\$\{{HELICAL_{name}_DIR:-(.+?)\}}[:,\s\"]", text))
        defaults = {re.sub(r":\?[^}]*", "", d) for d in defaults}  # the first one also says how to fix it
        assert defaults == {f"${{PROJECT_DIR}}/{folder}"}, (name, defaults)


def test_docker_policy_and_cadvisor_know_the_runner_label():
    policy = compose_services("docker-api.yaml")["docker-policy"]
    assert policy["environment"]["DOCKER_POLICY_LABEL"] == contract.RUNNER_LABEL
    # The core's runner network is the default; a worker host sets its own (make worker-host).
    network = compose_services("airflow-common.yaml")["airflow-common"]["environment"]["HELICAL_DOCKER_NETWORK"]
    assert compose_file("docker-compose.yaml")["networks"]["runners"]["name"] == network
    assert policy["environment"]["DOCKER_POLICY_NETWORK"] == f"${{HELICAL_RUNNER_NETWORK:-{network}}}"
    cadvisor = compose_services("cadvisor.yaml")["cadvisor"]["command"]
    (whitelist,) = [arg for arg in cadvisor if arg.startswith("--whitelisted_container_labels=")]
    assert contract.RUNNER_LABEL in whitelist.split("=", 1)[1].split(",")


def test_docker_policy_expects_the_runner_the_workers_ask_for():
    """The gateway allows exactly the user, limits and folders RunnerOperator sends: the same .env settings,
    with the same defaults, as the workers' HELICAL_* variables."""
    worker = compose_services("airflow-common.yaml")["airflow-common"]["environment"]  # every worker extends it
    policy = compose_services("docker-api.yaml")["docker-policy"]["environment"]
    for gateway_name, worker_name in (("UID", "UID"), ("MEMORY", "MEMORY"), ("CPUS", "CPUS")):
        assert policy[f"DOCKER_POLICY_RUNNER_{gateway_name}"] == worker[f"HELICAL_RUNNER_{worker_name}"]
    folders = [re.sub(r":\?[^}]*", "", worker[f"HELICAL_{name}_DIR"]) for name in ("DATA", "RESULTS", "MODELS")]
    assert policy["DOCKER_POLICY_RUNNER_FOLDERS"] == ",".join(folders)
    assert policy["DOCKER_POLICY_IMAGES"] == f"{worker['HELICAL_RUNNER_CPU_IMAGE']},{worker['HELICAL_RUNNER_GPU_IMAGE']}"


def test_the_load_test_asks_for_the_params_the_dag_takes():
    from loadtest.config import CLASSIFIER_MODES, DAG_PARAM_NAMES, DEVICES

    dag = (ROOT / "dags" / "helical_model_workflow.py").read_text()
    assert tuple(re.findall(r'^\s+"(\w+)": Param\(', dag, re.M)) == DAG_PARAM_NAMES
    assert (DEVICES, CLASSIFIER_MODES) == (contract.DEVICE_PARAMS, contract.CLASSIFIER_MODES)
