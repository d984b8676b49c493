"""compose/airflow/cluster_check.py, in the Airflow image it runs in: the cluster marker and the messages a worker
host stops with (the real credentials checks run in tests/e2e/test_scale_out.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import cluster_check
import pytest
from cryptography.fernet import Fernet

KEY = Fernet.generate_key().decode()


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HELICAL_CLUSTER_ID", "c0ffee")
    monkeypatch.setenv("HELICAL_CLUSTER_ADDRESS", "10.0.0.5")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", KEY)
    monkeypatch.setenv("HELICAL_RESULTS_DIR", "/srv/shared/results")
    cluster_check.write_marker(tmp_path)
    return tmp_path / cluster_check.MARKER


def test_a_host_that_sees_the_cores_marker_passes(marker: Path) -> None:
    assert cluster_check.marker_problems(marker, "c0ffee", KEY) == []
    assert oct(marker.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in marker.parent.iterdir()] == [cluster_check.MARKER]  # no temporary file left


def test_a_host_without_the_shared_filesystem_is_told_where_to_mount_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELICAL_RESULTS_DIR", "/srv/shared/results")
    (problem,) = cluster_check.marker_problems(tmp_path / cluster_check.MARKER, "c0ffee", KEY)
    assert problem.startswith("HELICAL_RESULTS_DIR=/srv/shared/results: no .helical-cluster.json there")
    assert "Mount the shared filesystem" in problem and "same path as on the core" in problem


def test_another_clusters_folder_or_a_wrong_fernet_key_is_named(marker: Path) -> None:
    (other,) = cluster_check.marker_problems(marker, "other", KEY)
    assert "belongs to another cluster" in other and "10.0.0.5" in other and "make worker-env" in other
    (fernet,) = cluster_check.marker_problems(marker, "c0ffee", Fernet.generate_key().decode())
    assert fernet.startswith("AIRFLOW_FERNET_KEY in worker.env is not the core's")


def test_the_ca_certificate_comes_from_worker_env(tmp_path: Path) -> None:
    assert "CLUSTER_CA_CERT in worker.env" in cluster_check.write_ca("not base64!", tmp_path / "ca.crt")
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert cluster_check.write_ca(base64.b64encode(pem).decode(), tmp_path / "tls" / "ca.crt") is None
    assert (tmp_path / "tls" / "ca.crt").read_bytes() == pem


def test_an_unreachable_broker_names_the_port_to_publish(tmp_path: Path) -> None:
    problem = cluster_check.broker_problem("rediss://:pw@127.0.0.1:1/0", str(tmp_path / "ca.crt"))
    assert problem and "cannot reach the broker at 127.0.0.1:1" in problem and "CLUSTER_REDIS_PORT" in problem
