"""docs/kubernetes.md's install commands say what the files they install say: the chart and Kubernetes versions,
the image tag, each Secret's name and key, the runner pool."""

from __future__ import annotations

import re

import pytest

from helical_workflow.settings import RUNNER_POOL
from tests.k8s.k8s_files import ROOT, values, versions

DOC = (ROOT / "docs" / "kubernetes.md").read_text()
# The key the chart reads from each Secret our values name (kubernetes/chart-keys.yaml gives the sources).
SECRET_KEYS = {("fernetKeySecretName",): "fernet-key", ("apiSecretKeySecretName",): "api-secret-key",
               ("jwtSecretName",): "jwt-secret", ("data", "metadataSecretName"): "connection",
               ("data", "brokerUrlSecretName"): "connection", ("redis", "passwordSecretName"): "password"}


def test_the_doc_installs_the_pinned_versions_and_image():
    assert re.findall(r"--version (\S+)", DOC) == [versions()["chart"]["version"]]
    major_minor = ".".join(str(versions()["kubernetes"]).split(".")[:2])
    assert f"Kubernetes {major_minor}" in DOC
    assert f"helical-airflow:{values()['defaultAirflowTag']}" in DOC
    assert versions()["chart"]["repository"] in DOC


@pytest.mark.parametrize(("path", "key"), SECRET_KEYS.items())
def test_the_doc_creates_each_secret_our_values_name_with_the_key_the_chart_reads(path, key):
    name = values()
    for part in path:
        name = name[part]
    assert re.search(rf"create secret generic {re.escape(name)} \\?\s*--from-literal={re.escape(key)}=", DOC), name


def test_every_secret_name_in_the_values_is_created_by_the_doc():
    def secret_names(tree, found):
        for key, value in tree.items():
            if isinstance(value, dict):
                secret_names(value, found)
            elif key.endswith("SecretName"):
                found.add(value)
        return found

    assert secret_names(values(), set()) == set(re.findall(r"create secret generic (\S+)", DOC))


def test_the_doc_sets_the_pool_the_runner_tasks_use():
    assert f"airflow pools set {RUNNER_POOL} " in DOC
