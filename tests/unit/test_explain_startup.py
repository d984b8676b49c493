"""helical_tools/explain_startup.py: which containers `make up` reports, and the cause and fix it names for each
known one.

The live case (a .env whose Postgres password does not match the volume) is tests/e2e/test_startup_failure.py."""

from __future__ import annotations

import json

import pytest

from helical_tools.explain_startup import IMAGE_HINT, Container, hints_for, parse_ps, port_settings, read_example, trouble

EXAMPLE = read_example()
AUTH_FAILED = ('sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "postgres" '
               '(172.18.0.3), port 5432 failed: FATAL:  password authentication failed for user "airflow"')


def row(**fields) -> dict:
    return {"Service": "airflow-init", "Name": "helical-airflow-init-1", "State": "exited", "Health": "",
            "ExitCode": 1, "Project": "helical", **fields}


def test_compose_ps_json_is_read_in_both_of_its_shapes():
    rows = [row(), row(Service="postgres", Name="helical-postgres-1", State="running", Health="healthy", ExitCode=0)]
    as_lines = "\n".join(json.dumps(r) for r in rows) + "\n"  # compose >= 2.21
    assert parse_ps(as_lines) == parse_ps(json.dumps(rows))  # older: one array
    assert parse_ps(as_lines)[0] == Container("airflow-init", "helical-airflow-init-1", "exited", "", 1, "helical")
    assert parse_ps("") == []


@pytest.mark.parametrize(("state", "health", "code", "start_error", "reported"), [
    ("exited", "", 1, "", "exited with code 1"),
    ("exited", "", 0, "", None),  # a one-shot service (airflow-init) that did its work
    ("restarting", "", 3, "", "restarting (last exit code 3)"),
    ("running", "unhealthy", 0, "", "unhealthy"),
    ("running", "starting", 0, "", "not healthy when the wait ended"),
    ("running", "healthy", 0, "", None),
    ("running", "", 0, "", None),  # no healthcheck
    ("created", "", 0, "", None),  # waits for a dependency that failed: that one is reported
    ("created", "", 128, "Bind for 127.0.0.1:8080 failed: port is already allocated", "could not start"),
])
def test_only_containers_in_the_way_are_reported(state, health, code, start_error, reported):
    container = Container("s", "n", state, health, code)
    assert trouble(container, start_error) == reported


def test_a_password_that_does_not_match_the_volume_names_both_fixes():
    (hint,) = hints_for(AUTH_FAILED, "helical-3f9c2a7d", {}, EXAMPLE)
    assert "password authentication failed" in hint.cause
    assert "helical-3f9c2a7d_postgres-db" in hint.fix
    assert "put back the .env that created the volume" in hint.fix
    assert "make clean, which DELETES the data" in hint.fix


@pytest.mark.parametrize(("said", "port", "setting"), [
    ("driver failed programming external connectivity on endpoint helical-b-airflow-apiserver-1 (5f1e): "
     "Bind for 127.0.0.1:8080 failed: port is already allocated", "8080", "AIRFLOW_PORT"),
    ("Error starting userland proxy: listen tcp4 0.0.0.0:9090: bind: address already in use", "9090", "PROMETHEUS_PORT"),
    ("Bind for [::1]:5555 failed: port is already allocated", "5555", "FLOWER_PORT"),
])
def test_a_port_in_use_names_the_setting_that_moves_it(said, port, setting):
    (hint,) = hints_for(said, "helical", {}, EXAMPLE)
    assert f"port {port} is already in use" in hint.cause
    assert f"docker ps --filter publish={port}" in hint.fix and f"{setting} in .env" in hint.fix


def test_the_port_setting_follows_env_over_the_examples_default():
    assert port_settings("18080", {"AIRFLOW_PORT": "18080"}, EXAMPLE) == ["AIRFLOW_PORT"]
    assert port_settings("8080", {"AIRFLOW_PORT": "18080"}, EXAMPLE) == []


@pytest.mark.parametrize("said", [
    "Error response from daemon: pull access denied for prom/alertmanagr, repository does not exist",
    "failed to resolve reference \"docker.io/prom/alertmanager:v9\": not found",
    "Error response from daemon: manifest unknown",
])
def test_an_image_that_cannot_be_pulled(said):
    assert hints_for(said, "helical", {}, EXAMPLE) == [IMAGE_HINT]


@pytest.mark.parametrize("said", [
    'could not select device driver "nvidia" with capabilities: [[gpu]]',
    "Error response from daemon: unknown or invalid runtime name: nvidia",
    "nvidia-container-cli: initialization error: nvml error: driver not loaded",
])
def test_no_gpu_runtime_says_how_to_get_one_or_leave_the_gpu_out(said):
    (hint,) = hints_for(said, "helical", {}, EXAMPLE)
    assert "NVIDIA Container Toolkit" in hint.fix and "drop GPU=1" in hint.fix


def test_an_unknown_failure_gets_no_invented_cause():
    assert hints_for("Traceback (most recent call last):\nValueError: something else", "helical", {}, EXAMPLE) == []
