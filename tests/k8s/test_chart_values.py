"""kubernetes/values*.yaml for the official chart: only keys the named chart version documents, no secret in them,
and the names and settings they share with the rest of the repository said the same way."""

from __future__ import annotations

import re

import pytest
import yaml

from helical_k8s import build_statsd_values
from helical_workflow import contract
from helical_workflow.settings import load_settings
from tests.compose_config import names_env
from tests.k8s.k8s_files import KUBERNETES, ROOT, VALUES_FILES, key_paths, leaves, objects, settings_env, values, versions

CHART_KEYS = yaml.safe_load((KUBERNETES / "chart-keys.yaml").read_text())
FREE_FORM = set(CHART_KEYS["free_form"])
# Leaf keys that would hold a secret's value (a *SecretName key names a Secret instead).
SECRET_VALUE = re.compile(r"(?i)(password|passwd|token|fernet_?key|secret_?key|jwt_?secret|sql_alchemy_conn|"
                          r"broker_?url|connection|(^|\.)(secret|pass|apiSecretKey|fernetKey|webserverSecretKey))$")
COMPOSE = ROOT / "compose" / "airflow-common.yaml"  # the settings every Airflow service of compose shares


def compose_default(variable: str) -> str:
    """The value the compose file gives an Airflow setting (its ${NAME:-default} default, or a literal)."""
    found = re.search(rf"^\s+{variable}: (.+)$", COMPOSE.read_text(), re.M)
    assert found, variable
    value = found.group(1).strip().strip('"')
    shared_name = re.fullmatch(r"\$\{(NAME_\w+)(:\?[^}]*)?\}", value)  # config/names.env, from names.yaml
    if shared_name:
        return names_env()[shared_name.group(1)]
    default = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return default.group(1) if default else value


def test_the_key_list_is_for_the_chart_version_we_install():
    assert CHART_KEYS["chart"] == versions()["chart"]["version"]
    assert all(source.strip() for source in {**CHART_KEYS["keys"], **CHART_KEYS["free_form"]}.values())
    assert FREE_FORM <= set(CHART_KEYS["keys"])


def unknown_keys(tree: dict) -> list[str]:
    """Key paths a values tree sets that the chart version does not document (a listed key's parents are maps
    the chart documents by their children)."""
    documented = set(CHART_KEYS["keys"])
    for key in CHART_KEYS["keys"]:
        parts = key.split(".")
        documented |= {".".join(parts[:i]).removesuffix("[]") for i in range(1, len(parts))}
    return sorted(path for path in key_paths(tree, FREE_FORM) if path.removesuffix("[]") not in documented)


@pytest.mark.parametrize("name", VALUES_FILES)
def test_every_key_our_values_set_is_one_the_chart_documents(name):
    unknown = unknown_keys(values(name))
    assert unknown == [], f"{name}: keys not in kubernetes/chart-keys.yaml for chart {CHART_KEYS['chart']}: {unknown}"


def test_the_key_check_catches_a_misspelt_key():
    misspelt = {"workers": {"celery": {"sets": [{"name": "cpu", "queues": "cpu"}], "keda": {"enable": True}}},
                "fernetKeySecret": "x", "config": {"anything": {"goes": 1}}}
    assert unknown_keys(misspelt) == ["fernetKeySecret", "workers.celery.keda.enable", "workers.celery.sets[].queues"]


@pytest.mark.parametrize("name", VALUES_FILES)
def test_no_secret_is_in_the_values(name):
    found = [(path, value) for path, value in leaves(values(name)) if SECRET_VALUE.search(path)]
    assert found == [], f"{name}: a secret belongs in a Kubernetes Secret (docs/kubernetes.md): {found}"


def test_the_secret_check_catches_a_password():
    assert any(SECRET_VALUE.search(path) for path, _ in leaves({"config": {"database": {"sql_alchemy_conn": "x"}}}))
    assert any(SECRET_VALUE.search(path) for path, _ in leaves({"fernetKey": "x", "redis": {"password": "x"}}))
    assert not any(SECRET_VALUE.search(path) for path, _ in leaves({"fernetKeySecretName": "x"}))


def test_each_queue_has_its_worker_set_and_the_gpu_overlay_keeps_the_cpu_set():
    cpu_sets = values()["workers"]["celery"]["sets"]
    gpu_sets = values("values-gpu.yaml")["workers"]["celery"]["sets"]
    assert [s["queue"] for s in cpu_sets] == [contract.CPU_QUEUE]
    assert [s["queue"] for s in gpu_sets] == list(contract.QUEUES)
    assert gpu_sets[0] == cpu_sets[0], "values-gpu.yaml must repeat values.yaml's cpu set (Helm replaces lists)"
    assert all(s["name"] == s["queue"] for s in gpu_sets)
    assert values()["workers"]["celery"]["enableDefault"] is False and values()["workers"]["celery"]["keda"]["enabled"]


def test_the_airflow_settings_match_the_compose_stack():
    config = values()["config"]
    assert config["operators"]["default_queue"] == contract.CPU_QUEUE == compose_default(
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE")
    for section, option in (("scheduler", "task_queued_timeout"), ("scheduler", "num_stuck_in_queued_retries"),
                            ("scheduler", "task_instance_heartbeat_timeout"), ("core", "auth_manager"),
                            ("metrics", "statsd_prefix")):
        assert str(config[section][option]) == compose_default(f"AIRFLOW__{section}__{option}".upper()), option
    monitoring = (ROOT / "compose" / "docker-compose.monitoring.yaml").read_text()
    assert f"prom/statsd-exporter:{values()['images']['statsd']['tag']}" in monitoring


def test_the_workers_mount_the_folders_where_the_dag_reads_them():
    celery = values()["workers"]["celery"]
    defaults = load_settings({})
    mounts = {m["name"]: m for m in celery["extraVolumeMounts"]}
    volumes = {v["name"]: v["persistentVolumeClaim"] for v in celery["extraVolumes"]}
    assert mounts["data"] == {"name": "data", "mountPath": str(defaults.worker_data_dir), "readOnly": True}
    assert volumes["data"]["readOnly"] is True
    assert mounts["results"] == {"name": "results", "mountPath": str(defaults.worker_results_dir)}
    claims = {c["metadata"]["name"] for c in objects("base", "PersistentVolumeClaim", "airflow")}
    assert {v["claimName"] for v in volumes.values()} <= claims


def test_runner_pods_run_as_the_airflow_uid_so_both_write_the_results():
    assert settings_env()["HELICAL_RUNNER_UID"] == str(values()["uid"])
    assert load_settings(settings_env()).launch_mode == "kubernetes"


def test_the_statsd_values_are_the_mapping_as_generated():
    committed = (KUBERNETES / "values-statsd.yaml").read_text()
    assert committed == build_statsd_values.render(), "run: .venv/bin/python -m helical_k8s.build_statsd_values"
