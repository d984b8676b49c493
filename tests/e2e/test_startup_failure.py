"""`make up` explains a failed start (scripts/helical_tools/explain_startup.py, docs/operations.md), shown with real failures on
small compose projects of their own: a few services each, no stack needed, nothing of the e2e stack touched.

- a .env whose Postgres password does not match the volume: the cause and both fixes are named;
- a second stack on the same host asking for a port the first one holds: the port and the setting that moves it;
- a compose project name that another checkout's containers carry: refused before anything starts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.compose_config import names_env
from tests.harness import MAKE_VARS, ROOT, make_captured, user_environment

FIRST, SECOND = "helical-startup-check", "helical-startup-check-2"
# No cluster mode (it would publish Postgres on the e2e stack's port), no test overrides, no profiles.
SMALL = {"CLUSTER_BIND_ADDRESS": "", "COMPOSE_EXTRA_FILES": "", "COMPOSE_PROFILES": ""}
FREE_PORT = "19102"  # statsd-exporter's metrics, moved off the e2e stack's 9102


def make_up(project: str, services: str, **variables: str) -> subprocess.CompletedProcess:
    return make_captured("up", **SMALL, COMPOSE_PROJECT_NAME=project, SERVICES=services, **variables)


def remove_project(project: str) -> None:
    subprocess.run(["docker", "compose", "-f", "compose.yaml", "--profile", "*", "down", "--volumes", "--remove-orphans"],
                   cwd=ROOT, env={**user_environment(), **names_env(), **MAKE_VARS, **SMALL, "COMPOSE_PROJECT_NAME": project},
                   capture_output=True, check=False)


@pytest.fixture(scope="module", autouse=True)
def small_projects() -> Iterator[None]:
    for project in (FIRST, SECOND):
        remove_project(project)
    yield
    for project in (FIRST, SECOND):
        remove_project(project)


def test_a_password_that_does_not_match_the_volume_names_the_cause_and_both_fixes():
    made = make_up(FIRST, "postgres")  # the volume, initialised with .env's password
    assert made.returncode == 0, made.stdout[-3000:]
    # As after deleting .env: make would generate a new password, the volume keeps the old one.
    failed = make_up(FIRST, "airflow-init", POSTGRES_PASSWORD="0" * 48)
    said = failed.stdout
    assert failed.returncode != 0, said[-3000:]
    assert "── airflow-init" in said and 'password authentication failed for user "airflow"' in said, said[-3000:]
    assert f"volume ({FIRST}_postgres-db)" in said
    assert "put back the .env that created the volume" in said and "make clean, which DELETES the data" in said


def test_a_second_stack_asking_for_a_held_port_is_told_which_setting_moves_it():
    first = make_up(FIRST, "statsd-exporter", STATSD_EXPORTER_PORT=FREE_PORT)
    assert first.returncode == 0, first.stdout[-3000:]
    second = make_up(SECOND, "statsd-exporter", STATSD_EXPORTER_PORT=FREE_PORT)
    said = second.stdout
    assert second.returncode != 0, said[-3000:]
    assert f"port {FREE_PORT} is already in use" in said and "STATSD_EXPORTER_PORT in .env" in said, said[-3000:]


def test_a_project_name_that_another_checkout_uses_is_refused_before_anything_starts():
    name = "hx-e2e-other-checkout"
    subprocess.run(["docker", "create", "--name", name, "--label", f"com.docker.compose.project={FIRST}",
                    "--label", "com.docker.compose.project.working_dir=/srv/another-checkout",
                    "python:3.12-slim-bookworm", "true"], check=True, capture_output=True)
    try:
        refused = make_captured("preflight", COMPOSE_PROJECT_NAME=FIRST)
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
    assert refused.returncode != 0
    assert f"the compose project '{FIRST}' belongs to the checkout in /srv/another-checkout" in refused.stdout
