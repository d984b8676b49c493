"""Our own manifests (kubernetes/base and the NFS overlay), rendered by kubectl kustomize and validated strictly
against the pinned Kubernetes version's schemas; the runner namespace's boundaries, object by object."""

from __future__ import annotations

import json
import subprocess

import kubernetes_validate
import pytest

from helical_workflow.contract import RUNNER_LABEL
from helical_workflow.pod_settings import load_pod_settings
from tests.k8s.k8s_files import KUBECTL, KUSTOMIZATIONS, kubernetes_version, objects, one, rendered, settings_env, values

RUNNERS = load_pod_settings(settings_env()).namespace
AIRFLOW = "airflow"


def test_kubectl_is_the_locked_one_and_within_a_minor_version_of_the_pinned_kubernetes():
    client = json.loads(subprocess.run([str(KUBECTL), "version", "--client", "-o", "json"], capture_output=True,
                                       text=True, check=True).stdout)["clientVersion"]
    assert abs(int(client["minor"]) - int(kubernetes_version().split(".")[1])) <= 1, client


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_manifest_validates_strictly_at_the_pinned_version(kustomization):
    docs = rendered(kustomization)
    assert docs
    for doc in docs:
        assert kubernetes_validate.validate(doc, kubernetes_version(), strict=True), doc["metadata"]


def test_strict_validation_refuses_what_the_api_server_would():
    role = dict(one("base", "Role", "helical-runner-launcher", RUNNERS))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**role, "rulez": []}, kubernetes_version(), strict=True)


def test_the_runner_namespace_enforces_the_restricted_pod_security_profile():
    labels = one("base", "Namespace", RUNNERS)["metadata"]["labels"]
    major_minor = ".".join(kubernetes_version().split(".")[:2])
    assert labels == {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")} | {
        "pod-security.kubernetes.io/enforce-version": f"v{major_minor}"}


def test_the_workers_may_only_start_follow_mark_and_delete_pods_in_the_runner_namespace():
    role = one("base", "Role", "helical-runner-launcher", RUNNERS)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    binding = one("base", "RoleBinding", "helical-runner-launcher", RUNNERS)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    workers = values()["workers"]["celery"]["serviceAccount"]
    assert workers["create"] and binding["subjects"] == [{"kind": "ServiceAccount", "name": workers["name"],
                                                          "namespace": AIRFLOW}]
    for kustomization in KUSTOMIZATIONS:
        kinds = {doc["kind"] for doc in rendered(kustomization)}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, kustomization
        assert [doc["metadata"]["namespace"] for doc in rendered(kustomization) if doc["kind"] in {"Role", "RoleBinding"}
                ] == [RUNNERS, RUNNERS]


def test_no_service_account_of_the_runner_namespace_mounts_a_token():
    accounts = {sa["metadata"]["name"]: sa for sa in objects("base", "ServiceAccount", RUNNERS)}
    assert set(accounts) == {"default", load_pod_settings(settings_env()).service_account}
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts.values())


def test_runner_pods_reach_only_the_statsd_exporter_and_dns():
    policies = {np["metadata"]["name"]: np["spec"] for np in objects("base", "NetworkPolicy", RUNNERS)}
    assert policies["deny-all"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    runner = policies["runner-to-statsd"]
    assert runner["podSelector"] == {"matchExpressions": [{"key": RUNNER_LABEL, "operator": "Exists"}]}
    assert runner["policyTypes"] == ["Egress"] and "ingress" not in runner
    (statsd, dns) = runner["egress"]
    assert statsd == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": AIRFLOW}},
                              "podSelector": {"matchLabels": {"tier": "airflow", "component": "statsd",
                                                              "release": "airflow"}}}],
                      "ports": [{"protocol": "UDP", "port": 9125}]}
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted(p["protocol"] for p in dns["ports"]) == ["TCP", "UDP"] and {p["port"] for p in dns["ports"]} == {53}
    assert set(policies) == {"deny-all", "runner-to-statsd"}
    # The chart's side: its exporter admits the runner pods (values.yaml statsd.extraNetworkPolicies).
    assert values()["statsd"]["extraNetworkPolicies"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": RUNNERS}},
        "podSelector": {"matchExpressions": [{"key": RUNNER_LABEL, "operator": "Exists"}]}}]
    assert settings_env()["HELICAL_STATSD_HOST"].startswith(f"airflow-statsd.{AIRFLOW}.svc")


def test_the_claims_are_readwritemany_and_named_as_their_users_say():
    claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c["spec"] for c in
              objects("base", "PersistentVolumeClaim")}
    pods = load_pod_settings(settings_env())
    workers = values()["workers"]["celery"]["extraVolumes"]
    expected = {(RUNNERS, pods.data_claim), (RUNNERS, pods.models_claim), (RUNNERS, pods.results_claim),
                (AIRFLOW, values()["logs"]["persistence"]["existingClaim"])}
    expected |= {(AIRFLOW, volume["persistentVolumeClaim"]["claimName"]) for volume in workers}
    assert set(claims) == expected
    assert all(spec["accessModes"] == ["ReadWriteMany"] for spec in claims.values())


def test_the_nfs_overlay_binds_each_claim_to_its_own_volume_of_the_shared_export():
    claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c["spec"]["volumeName"]
              for c in objects("overlays/nfs", "PersistentVolumeClaim")}
    volumes = {pv["metadata"]["name"]: pv["spec"] for pv in objects("overlays/nfs", "PersistentVolume")}
    assert sorted(claims.values()) == sorted(volumes)
    for (namespace, name), volume in claims.items():
        spec = volumes[volume]
        assert spec["claimRef"] == {"namespace": namespace, "name": name}
        assert spec["accessModes"] == ["ReadWriteMany"] and spec["persistentVolumeReclaimPolicy"] == "Retain"
        assert spec["nfs"].get("readOnly", False) == (name.endswith(("-data", "-models"))), volume
    # One export per folder, whichever namespace mounts it.
    paths = {}
    for (_, name), volume in claims.items():
        paths.setdefault(name, set()).add(volumes[volume]["nfs"]["path"])
    assert all(len(found) == 1 for found in paths.values()), paths


def test_the_settings_configmap_is_settings_env_where_the_chart_reads_it():
    configmap = one("base", "ConfigMap", "helical-settings", AIRFLOW)
    assert configmap["data"] == settings_env()
    assert f"name: {configmap['metadata']['name']}" in values()["extraEnvFrom"]
