"""kubernetes/base/settings.env: every setting in it is one the DAG package reads, and the names it gives are the
defaults pod_settings.py has, which are the objects kubernetes/base makes."""

from __future__ import annotations

import dataclasses

from helical_workflow.pod_settings import load_pod_settings
from helical_workflow.settings import load_settings
from tests.k8s.k8s_files import ROOT, settings_env

READERS = [ROOT / "dags" / "helical_workflow" / name for name in ("settings.py", "pod_settings.py")]
NAMES = ("namespace", "service_account", "data_claim", "models_claim", "results_claim")


def test_every_setting_is_read_by_the_dag_package():
    code = "\n".join(path.read_text() for path in READERS)
    assert [name for name in settings_env() if f'"{name}"' not in code] == []


def test_the_settings_load_and_name_what_the_defaults_name():
    env = settings_env()
    settings, pods = load_settings(env), load_pod_settings(env)
    assert settings.launch_mode == "kubernetes" and settings.statsd_host == env["HELICAL_STATSD_HOST"]
    defaults = dataclasses.asdict(load_pod_settings({}))
    assert {name: getattr(pods, name) for name in NAMES} == {name: defaults[name] for name in NAMES}
    assert pods.gpu_node_selector and pods.gpu_tolerations
