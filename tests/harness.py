"""The real stack on this machine, started the way users start it (`make up WORKERS=3`), and the helpers the e2e,
security and chaos tests share (tests/conftest.py starts it once per session).

Its data, results and models live under .e2e/ (git-ignored), so a user's ./data and ./results are untouched.
The stack is stopped with `make down` at the end, and the test asserts nothing of it is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from loadtest.client import AirflowApi, ApiError
from tests.cluster_address import address_for_tests
from tests.compose_config import names_env

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / ".e2e"
VOCAB = ROOT.parent / "shared" / "scgpt-vocab" / "default_census_vocab.json"
DAG_ID = "helical_model_workflow"
# Every profile but grafana's and cadvisor's: their images cannot be had on the test machines (no registry).
PROFILES = "monitoring,flower"


# The e2e stack's compose project: fixed, whatever the checkout's own (COMPOSE_PROJECT_NAME in .env) is, so the
# tests know its network and container names. The checkout's own stack is stopped first (tests/conftest.py).
PROJECT = "helical"

# Command-line variables, so they win over .env inside make.
MAKE_VARS = {
    "COMPOSE_PROJECT_NAME": PROJECT,
    "HELICAL_DATA_DIR": str(E2E / "data"),
    "HELICAL_RESULTS_DIR": str(E2E / "results"),
    "HELICAL_MODELS_DIR": str(E2E / "models"),
    "HELICAL_LOGS_DIR": str(E2E / "logs"),
    # Cluster mode (docs/scale-out.md) on an address of this host's Docker bridge (tests/cluster_address.py):
    # reachable from a second compose project on its own network, as a LAN address is from another machine.
    "CLUSTER_BIND_ADDRESS": address_for_tests(dict(os.environ))[0],
    "COMPOSE_PROFILES": PROFILES,
    "COMPOSE_EXTRA_FILES": "-f tests/e2e/compose.test.yaml",
    "DAG_REFRESH_INTERVAL": "10",
    # The alert test's webhook receiver, a service of tests/e2e/compose.test.yaml.
    "ALERT_WEBHOOK_URL": "http://alert-receiver:9000/alerts",
    # Backups the tests make stay under .e2e/ with the rest of their files.
    "BACKUP_DIR": str(E2E / "backups"),
}
# The alert the live alert test fires, and the wait before it fires there (production: the rule's `for`).
ALERT_UNDER_TEST, ALERT_TEST_FOR = "CeleryQueueHasNoWorker", "30s"


def user_environment() -> dict[str, str]:
    """This process's environment without what a `make` above it exported from .env: a setting in the environment
    wins over .env (as in compose), so an inherited copy would hide a change the test makes to .env, as it would
    not for a user typing `make` in a shell."""
    settings = set(env_file()) if (ROOT / ".env").exists() else set()
    return {key: value for key, value in os.environ.items() if key not in settings}


def make(*args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    variables = [f"{k}={v}" for k, v in {**MAKE_VARS, **extra}.items()]
    return subprocess.run(["make", *args, *variables], cwd=ROOT, check=check, text=True, env=user_environment())


def make_captured(*args: str, **extra: str) -> subprocess.CompletedProcess:
    """`make` as above, never raising: its return code and output (stdout and stderr together) for the test."""
    variables = [f"{k}={v}" for k, v in {**MAKE_VARS, **extra}.items()]
    return subprocess.run(["make", *args, *variables], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=user_environment())


def compose(*args: str, extra_files: tuple[str, ...] = (), env: dict[str, str] | None = None) -> str:
    """docker compose on the e2e stack (the same files make uses, plus `extra_files`, with .env's settings
    overridden by `env`), returning stdout."""
    files = ["compose.yaml", "compose/docker-compose.cluster.yaml", *MAKE_VARS["COMPOSE_EXTRA_FILES"].split()[1::2],
             *extra_files]
    env = {**user_environment(), **names_env(), **MAKE_VARS, **(env or {})}
    return subprocess.run(["docker", "compose", *(flag for f in files for flag in ("-f", f)), *args],
                          cwd=ROOT, env=env, check=True, text=True, capture_output=True).stdout


def env_file() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def docker(*args: str, check: bool = True) -> str:
    """The Docker CLI's standard output."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout


def docker_run_runner(*args: str, volumes: dict[Path, str]) -> None:
    mounts = [flag for host, target in volumes.items() for flag in ("-v", f"{host}:{target}")]
    subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", str(os.getuid()), *mounts,
                    "helical-runner:cpu", *args], check=True)


def prepare_folders() -> None:
    """Three datasets and the tiny scGPT checkpoint (real vocabulary), made with the runner image itself."""
    shutil.rmtree(E2E, ignore_errors=True)
    for name in ("data", "results", "models", "alerts"):
        (E2E / name).mkdir(parents=True)
    write_faster_alerting(E2E / "monitoring")
    docker_run_runner("python", "/e2e/make_datasets.py", "/data",
                      volumes={ROOT / "tests" / "e2e": "/e2e:ro", E2E / "data": "/data"})
    docker_run_runner("helical-runner", "test-model", "--out", "/models", "--vocab", "/vocab/vocab.json",
                      volumes={E2E / "models": "/models", VOCAB: "/vocab/vocab.json:ro"})


def write_faster_alerting(folder: Path) -> None:
    """The real alert rules and Alertmanager template, waiting less (tests/e2e/compose.test.yaml mounts them)."""
    folder.mkdir(parents=True)
    rules = yaml.safe_load((ROOT / "monitoring" / "prometheus" / "rules" / "alerts.yml").read_text())
    (rule,) = [r for group in rules["groups"] for r in group["rules"] if r.get("alert") == ALERT_UNDER_TEST]
    rule["for"] = ALERT_TEST_FOR
    (folder / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    template = (ROOT / "monitoring" / "alertmanager" / "alertmanager.yml.tmpl").read_text()
    assert template.count("group_interval: 5m") == 1, "the template's group_interval moved: update the e2e's copy"
    (folder / "alertmanager.yml.tmpl").write_text(template.replace("group_interval: 5m", "group_interval: 30s"))


class Stack:
    """The running stack seen through its REST API, with the waits the tests share."""

    def __init__(self) -> None:
        values = env_file()
        self.url = f"http://localhost:{values.get('AIRFLOW_PORT') or 8080}"
        self.prometheus = f"http://localhost:{values.get('PROMETHEUS_PORT') or 9090}"
        self.flower = f"http://localhost:{values.get('FLOWER_PORT') or 5555}"
        self.statsd_metrics = f"http://localhost:{values.get('STATSD_EXPORTER_PORT') or 9102}/metrics"
        self.alertmanager = f"http://localhost:{values.get('ALERTMANAGER_PORT') or 9093}"
        self.ready_at = time.time()  # every scrape of the exporter since then must have succeeded
        self.flower_auth = (values.get("FLOWER_USER") or "admin", values["FLOWER_PASSWORD"])
        self.api = AirflowApi(self.url, values.get("_AIRFLOW_WWW_USER_USERNAME") or "admin",
                              values["_AIRFLOW_WWW_USER_PASSWORD"])
        self.results = E2E / "results"

    def trigger(self, name: str, **conf: Any) -> str:
        run_id = f"e2e__{name}__{int(time.time())}"
        self.api.trigger(DAG_ID, run_id, conf)
        return run_id

    def wait(self, run_id: str, timeout: float = 900) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                runs = self.api.list_runs(DAG_ID, run_id)
            except ApiError:  # the API answers 500 for the seconds Postgres restarts: ask again
                runs = []
            if runs and runs[0]["state"] in ("success", "failed"):
                return runs[0]["state"]
            time.sleep(3)
        raise TimeoutError(f"{run_id} still not finished after {timeout}s")

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        return self.api.task_instances(DAG_ID, run_id)

    def explain(self, run_id: str) -> str:
        """States and log tails of a run's tasks, for assertion messages."""
        lines = []
        for ti in self.task_instances(run_id):
            lines.append(f"{ti['task_id']}[{ti['map_index']}] {ti['state']} on {ti.get('hostname')}")
            if ti["state"] == "failed":
                lines.append(self.api.log_tail(ti, 30) or "(no log)")
        return "\n".join(lines)
