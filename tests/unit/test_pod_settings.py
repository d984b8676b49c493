"""Runner pod settings: Docker's resource notation said in Kubernetes quantities, JSON settings refused clearly."""

from __future__ import annotations

import pytest

from helical_workflow.pod_settings import cpu_quantity, load_pod_settings, memory_quantity


@pytest.mark.parametrize(("docker", "kubernetes"), [
    ("4g", "4Gi"), ("4G", "4Gi"), ("512m", "512Mi"), ("1024k", "1024Ki"), ("2gb", "2Gi"), ("2GiB", "2Gi"),
    ("1t", "1Ti"), ("1.5g", str(int(1.5 * 1024**3))), ("123456", "123456"), (" 3g ", "3Gi"),
])
def test_docker_memory_becomes_the_same_number_of_bytes(docker, kubernetes):
    assert memory_quantity(docker) == kubernetes


@pytest.mark.parametrize("bad", ["", "4x", "-1g", "g", "4 gigs", "1e9"])
def test_a_memory_docker_would_refuse_is_refused(bad):
    with pytest.raises(ValueError, match="RUNNER_MEMORY"):
        memory_quantity(bad)


@pytest.mark.parametrize(("cpus", "quantity"), [(1, "1"), (2.0, "2"), (0.5, "500m"), (1.25, "1250m"), (0.001, "1m")])
def test_cpus_become_cores_or_millicores(cpus, quantity):
    assert cpu_quantity(cpus) == quantity


def test_no_cpu_is_refused():
    with pytest.raises(ValueError, match="RUNNER_CPUS"):
        cpu_quantity(0)


@pytest.mark.parametrize(("name", "value", "why"), [
    ("HELICAL_GPU_NODE_SELECTOR", "{not json", "not JSON"),
    ("HELICAL_GPU_NODE_SELECTOR", '["a list"]', "must be a JSON dict"),
    ("HELICAL_GPU_TOLERATIONS", '{"key": "x"}', "must be a JSON list"),
])
def test_json_settings_name_themselves_when_wrong(name, value, why):
    with pytest.raises(ValueError, match=f"{name}.*{why}|{name} is {why}"):
        load_pod_settings({name: value})
