"""compose/airflow/cluster/cluster_check.py, in the Airflow image it runs in: the cluster marker and the messages a worker
host stops with (the real credentials checks run in tests/e2e/test_scale_out.py). The execution API checks talk to
a real TLS server on this machine, through the task SDK's own client."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import cluster_check
import pytest
from airflow.sdk.api import client as sdk_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HELICAL_CLUSTER_ID", "c0ffee")
    monkeypatch.setenv("HELICAL_CLUSTER_ADDRESS", "10.0.0.5")
    monkeypatch.setenv("HELICAL_RESULTS_DIR", "/srv/shared/results")
    cluster_check.write_marker(tmp_path)
    return tmp_path / cluster_check.MARKER


def test_a_host_that_sees_the_cores_marker_passes(marker: Path) -> None:
    assert cluster_check.marker_problems(marker, "c0ffee") == []
    assert oct(marker.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in marker.parent.iterdir()] == [cluster_check.MARKER]  # no temporary file left


def test_the_marker_holds_nothing_secret(marker: Path) -> None:
    # Worker hosts hold no Fernet key any more, so nothing in the shared folder is made with one.
    assert json.loads(marker.read_text()) == {"cluster_id": "c0ffee", "core": "10.0.0.5"}


def test_a_host_without_the_shared_filesystem_is_told_where_to_mount_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELICAL_RESULTS_DIR", "/srv/shared/results")
    (problem,) = cluster_check.marker_problems(tmp_path / cluster_check.MARKER, "c0ffee")
    assert problem.startswith("HELICAL_RESULTS_DIR=/srv/shared/results: no .helical-cluster.json there")
    assert "Mount the shared filesystem" in problem and "same path as on the core" in problem


def test_another_clusters_folder_is_named(marker: Path) -> None:
    (other,) = cluster_check.marker_problems(marker, "other")
    assert "belongs to another cluster" in other and "10.0.0.5" in other and "make worker-env" in other
    marker.write_text("[]")
    (not_ours,) = cluster_check.marker_problems(marker, "c0ffee")
    assert "belongs to another cluster" in not_ours


def test_the_ca_certificate_comes_from_worker_env(tmp_path: Path) -> None:
    assert "CLUSTER_CA_CERT in worker.env" in cluster_check.write_ca("not base64!", tmp_path / "ca.crt")
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert cluster_check.write_ca(base64.b64encode(pem).decode(), tmp_path / "tls" / "ca.crt") is None
    assert (tmp_path / "tls" / "ca.crt").read_bytes() == pem


def test_an_unreachable_broker_names_the_port_to_publish(tmp_path: Path) -> None:
    problem = cluster_check.broker_problem("rediss://:pw@127.0.0.1:1/0", str(tmp_path / "ca.crt"))
    assert problem and "cannot reach the broker at 127.0.0.1:1" in problem and "CLUSTER_REDIS_PORT" in problem


def make_ca(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    path = folder / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


@pytest.fixture
def execution_api(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 answering /execution/health, its certificate (for 127.0.0.1) signed by a CA of
    its own: (base URL, that CA's certificate)."""
    ca_key, ca_cert, ca_path = make_ca(tmp_path, "cluster-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "core")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    (tmp_path / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/execution/health"
            body = b'{"status": "healthy"}' if ok else b'{"detail": "Not Found"}'
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/execution/", ca_path
    server.shutdown()


def trust_only(monkeypatch: pytest.MonkeyPatch, ca_file: Path | None) -> None:
    """The SDK client's TLS settings as worker-host.yaml sets them: [api] ssl_ca_file, no public CAs."""
    monkeypatch.setattr(sdk_client, "API_SSL_CA_FILE_PATH", str(ca_file) if ca_file else None)
    monkeypatch.setattr(sdk_client, "API_CLIENT_USE_PUBLIC_CERTS", False)
    sdk_client.Client._get_ssl_context_cached.cache_clear()


def test_the_execution_api_passes_over_tls_checked_against_the_cluster_ca(execution_api, monkeypatch) -> None:
    url, ca = execution_api
    trust_only(monkeypatch, ca)
    assert cluster_check.execution_api_problem(url) is None


def test_a_core_certificate_from_another_ca_is_named(execution_api, monkeypatch, tmp_path: Path) -> None:
    url, _ = execution_api
    trust_only(monkeypatch, make_ca(tmp_path, "another-ca")[2])
    problem = cluster_check.execution_api_problem(url)
    assert problem and "TLS to the execution API" in problem and "CLUSTER_CA_CERT in worker.env" in problem


def test_an_unreachable_execution_api_names_the_port_to_publish(monkeypatch, tmp_path: Path) -> None:
    trust_only(monkeypatch, make_ca(tmp_path, "cluster-ca")[2])
    problem = cluster_check.execution_api_problem("https://127.0.0.1:1/execution/")
    assert problem and "cannot reach the execution API at https://127.0.0.1:1/execution/" in problem
    assert "CLUSTER_API_PORT" in problem
