"""The cluster's two checks, run in the Airflow image (docs/scale-out.md).

  write-marker  on the core (airflow-init, cluster mode): RESULTS/.helical-cluster.json, so that a worker host
                can tell it sees the core's results folder (the shared filesystem).
  check         on a worker host before its workers start (cluster-check in compose/worker-host.yaml): writes
                the cluster's CA certificate from worker.env, then checks the marker, the data and models
                folders, the broker's password and TLS, and the execution API's TLS, each as the workers will use
                it. Each failure names the setting and the fix; any failure stops the host before a worker takes a
                task. A worker host holds no other credential (docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

MARKER = ".helical-cluster.json"
RESULTS, DATA, MODELS = Path("/opt/airflow/results"), Path("/opt/airflow/data"), Path("/opt/airflow/models")
FRESH_ENV = "copy a fresh worker.env from the core (`make worker-env` there)"


def write_marker(results: Path = RESULTS) -> None:
    payload = {"cluster_id": os.environ["HELICAL_CLUSTER_ID"], "core": os.environ["HELICAL_CLUSTER_ADDRESS"]}
    tmp = results / f".{MARKER}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.chmod(0o644)
        os.replace(tmp, results / MARKER)
    except OSError as err:
        sys.exit(f"cannot write the cluster marker into {results_host_path()} ({err.strerror}): make that folder "
                 "writable by AIRFLOW_UID, or set AIRFLOW_UID in .env to its owner")
    finally:
        tmp.unlink(missing_ok=True)


def results_host_path() -> str:
    return os.environ.get("HELICAL_RESULTS_DIR", str(RESULTS))


def marker_problems(marker: Path, cluster_id: str) -> list[str]:
    """What is wrong with this host's view of the core's marker, or []."""
    host_dir = results_host_path()
    try:
        payload = json.loads(marker.read_text())
    except FileNotFoundError:
        return [f"HELICAL_RESULTS_DIR={host_dir}: no {MARKER} there, so this host does not see the core's results "
                f"folder. Mount the shared filesystem (NFS, CephFS, Lustre...) at {host_dir} on this host, at the "
                "same path as on the core, and start again (docs/scale-out.md)"]
    except (OSError, ValueError) as err:
        return [f"HELICAL_RESULTS_DIR={host_dir}: cannot read {MARKER} ({err}): check the shared filesystem's mount"]
    if not isinstance(payload, dict) or payload.get("cluster_id") != cluster_id:
        core = payload.get("core") if isinstance(payload, dict) else None
        return [f"HELICAL_RESULTS_DIR={host_dir} belongs to another cluster (marker written by the core at "
                f"{core}): HELICAL_CLUSTER_ID in worker.env differs; {FRESH_ENV}"]
    return []


def folder_problems() -> list[str]:
    names = {DATA: "HELICAL_DATA_DIR", MODELS: "HELICAL_MODELS_DIR"}
    return [f"{names[path]}={os.environ.get(names[path], path)} is not a readable folder on this host: mount the "
            "shared filesystem there, at the core's path" for path in (DATA, MODELS)
            if not (path.is_dir() and os.access(path, os.R_OK | os.X_OK))]


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip().rstrip(":")


def broker_problem(url: str, ca_file: str) -> str | None:
    import redis

    where = f"the broker at {urlsplit(url).hostname}:{urlsplit(url).port}"
    try:
        redis.Redis.from_url(url, ssl_cert_reqs="required", ssl_ca_certs=ca_file, socket_timeout=10,
                             socket_connect_timeout=10).ping()
    except redis.AuthenticationError:
        return f"REDIS_PASSWORD in worker.env was refused by {where}; {FRESH_ENV}"
    except redis.ConnectionError as err:
        if "certificate" in str(err).lower() or "ssl" in str(err).lower():
            return (f"TLS to {where} failed ({describe(err)}): CLUSTER_CA_CERT in worker.env is not the CA of the "
                    f"core's certificate, or the certificate does not name this address; {FRESH_ENV}")
        return (f"cannot reach {where} ({describe(err)}): publish it on the core (CLUSTER_BIND_ADDRESS, "
                "CLUSTER_REDIS_PORT) and open that port in the firewall")
    return None


def execution_api_problem(base_url: str) -> str | None:
    """GET /execution/health (it needs no token) through the task SDK's own client, so its TLS settings are the
    ones task processes use: the cluster CA alone (AIRFLOW__API__SSL_CA_FILE), the core's name checked."""
    import httpx
    from airflow.sdk.api.client import Client

    try:
        Client(base_url=base_url, token="").get("health")
    except httpx.HTTPStatusError as err:
        return f"the execution API at {base_url} answered {err.response.status_code}: is the core healthy (make ps there)?"
    except httpx.HTTPError as err:
        text = describe(err)
        if "certificate" in text.lower() or "ssl" in text.lower():
            return (f"TLS to the execution API at {base_url} failed ({text}): CLUSTER_CA_CERT in worker.env is not "
                    f"the CA of the core's certificate, or the certificate does not name this address; {FRESH_ENV}")
        return (f"cannot reach the execution API at {base_url} ({text}): publish it on the core "
                "(CLUSTER_BIND_ADDRESS, CLUSTER_API_PORT) and open that port in the firewall")
    return None


def write_ca(encoded: str, target: Path) -> str | None:
    try:
        pem = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        pem = b""
    if b"BEGIN CERTIFICATE" not in pem:
        return f"CLUSTER_CA_CERT in worker.env is not a base64 PEM certificate; {FRESH_ENV}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pem)
    return None


def check() -> int:
    env = os.environ
    ca_file = env["AIRFLOW__CELERY__SSL_CACERT"]
    problems = [p for p in [write_ca(env.get("CLUSTER_CA_CERT", ""), Path(ca_file))] if p]
    problems += marker_problems(RESULTS / MARKER, env.get("HELICAL_CLUSTER_ID", ""))
    problems += folder_problems()
    if not problems:  # without the CA the TLS checks would only repeat that
        steps: list[Callable[[], str | None]] = [
            lambda: broker_problem(env["AIRFLOW__CELERY__BROKER_URL"], ca_file),
            lambda: execution_api_problem(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]),
        ]
        problems += [p for p in (step() for step in steps) if p]
    for problem in problems:
        print(f"worker host check: {problem}", file=sys.stderr)
    if not problems:
        print(f"worker host check: the core at {env.get('CLUSTER_CORE_ADDRESS')} accepts this host")
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["write-marker"]:
        write_marker()
    elif sys.argv[1:] == ["check"]:
        sys.exit(check())
    else:
        sys.exit("usage: cluster_check.py write-marker|check")
