"""RunnerOperator's own execute, with this image's DockerOperator and docker-py, through docker-policy (the
gateway, compose/docker-policy) to the recording engine of tests/gateway_harness.py: every request a runner
task makes passes the gateway as it is, on the CPU queue, with a GPU by device id, on the test GPU worker, when
an earlier try's runner is stopped first, and when the runner is OOM-killed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException
from gateway_harness import CONFIG, running_engine, running_gateway
from launch_engines import RUN_FOLDER, RUN_ID

from helical_workflow.operator import RunnerOperator

PARAMS = {"data": "", "device": "auto", "max_cells": 100, "classifier": "off", "batch_size": None}


@pytest.fixture
def engine(monkeypatch, tmp_path):
    """The recording engine behind a running gateway, and the workers' settings pointing at both."""
    with running_engine() as (recording, engine_port), running_gateway(engine_port) as port:
        for name, value in {"DOCKER_HOST": f"tcp://127.0.0.1:{port}", "HELICAL_DATA_DIR": CONFIG.data_dir,
                            "HELICAL_RESULTS_DIR": CONFIG.results_dir, "HELICAL_MODELS_DIR": CONFIG.models_dir,
                            "HELICAL_DOCKER_NETWORK": CONFIG.network, "HELICAL_RUNNER_UID": "1000",
                            "HELICAL_RUNNER_MEMORY": "4g", "HELICAL_RUNNER_CPUS": "1",
                            "HELICAL_RUNNER_CPU_IMAGE": "helical-runner:cpu",
                            "HELICAL_RUNNER_GPU_IMAGE": "helical-runner:gpu", "HELICAL_STATSD_HOST": "statsd-exporter",
                            "HELICAL_GPU_LOCK_DIR": str(tmp_path)}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HELICAL_GPU_WORKER_MODE", raising=False)
        monkeypatch.delenv("HELICAL_GPU_DEVICES", raising=False)
        yield recording


def run_task(gpu: bool = False, try_number: int = 1):
    operator = RunnerOperator(task_id="run_runner_gpu" if gpu else "run_runner_cpu", queue="gpu" if gpu else "cpu",
                              datasets=[{"dataset": "/data/a.h5ad", "dataset_name": "a"}], gpu=gpu)
    ti = SimpleNamespace(dag_id="helical_model_workflow", task_id=operator.task_id, map_index=0,
                         try_number=try_number)
    return operator.execute({"ti": ti, "params": PARAMS, "run_id": RUN_ID})


def forwarded_create(engine) -> dict:
    (create,) = [raw for raw in engine.received if b"/containers/create?" in raw]
    return json.loads(create.partition(b"\r\n\r\n")[2])


def test_a_cpu_runner_task_passes_the_gateway(engine):
    run_task()
    spec = forwarded_create(engine)
    assert spec["User"] == "1000:1000" and spec["Image"] == "helical-runner:cpu"
    assert "DeviceRequests" not in spec["HostConfig"]
    assert spec["HostConfig"]["LogConfig"]["Type"] == "json-file"
    calls = [raw.split(b" ", 2)[:2] for raw in engine.received]
    actions = [target.decode().partition("?")[0].rsplit("/", 1)[-1] for _, target in calls]
    assert {"version", "_ping", "create", "attach", "start", "wait"} <= set(actions)
    assert calls[-1][0] == b"DELETE"  # removed after success


def test_a_gpu_runner_task_asks_for_its_device_by_id(engine, monkeypatch):
    monkeypatch.setenv("HELICAL_GPU_DEVICES", "0,1")
    run_task(gpu=True)
    (request,) = forwarded_create(engine)["HostConfig"]["DeviceRequests"]
    assert request == {"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}


def test_the_test_gpu_worker_runs_the_cpu_image_without_a_device(engine, monkeypatch):
    monkeypatch.setenv("HELICAL_GPU_WORKER_MODE", "test")
    run_task(gpu=True)
    spec = forwarded_create(engine)
    assert spec["Image"] == "helical-runner:cpu" and "DeviceRequests" not in spec["HostConfig"]


def test_an_earlier_tries_runner_is_stopped_by_its_full_id(engine):
    earlier = engine.add("helical_model_workflow.run_runner_cpu.try1", {
        "helical.dag_id": "helical_model_workflow", "helical.task_id": "run_runner_cpu",
        "helical.run_id": RUN_FOLDER, "helical.map_index": "0"})
    run_task(try_number=2)
    stops = [raw for raw in engine.received if b"/stop" in raw.split(b"\r\n")[0]]
    assert stops and stops[0].startswith(f"POST /v1.41/containers/{earlier.id}/stop?t=10 ".encode())


def test_an_oom_killed_runner_is_explained(engine):
    engine.exit_code, engine.oom_killed = 137, True
    with pytest.raises(AirflowException, match="ran out of memory"):
        run_task()
