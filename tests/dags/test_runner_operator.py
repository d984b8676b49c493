"""The runner task's container: command, name, labels, mounts and the GPU routes (docker itself not called)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowException
from launch_engines import RUN_FOLDER, RUN_ID

from helical_workflow.contract import RunParams, runner_command
from helical_workflow.operator import RunnerOperator, container_name

PARAMS = {"data": "", "device": "auto", "max_cells": 100, "classifier": "off", "batch_size": None}


def test_runner_command_passes_every_param():
    pack = [{"dataset": "/data/lab/a.h5ad", "dataset_name": "lab__a"}, {"dataset": "/data/b.h5ad", "dataset_name": "b"}]
    assert runner_command(pack, "run_1", RunParams.of({**PARAMS, "batch_size": 32}), "cpu") == [
        "helical-runner", "run", "--data", "/data/lab/a.h5ad", "--name", "lab__a", "--data", "/data/b.h5ad",
        "--name", "b", "--run-id", "run_1", "--device", "cpu", "--max-cells", "100", "--classifier", "off",
        "--batch-size", "32",
    ]
    # The demo run of an empty data folder: the runner names its demo dataset itself.
    assert "--name" not in runner_command([{"dataset": "/data", "dataset_name": None}], "run_1", RunParams.of(PARAMS), "cpu")


def test_container_names_are_unique_and_valid():
    a = container_name("helical_model_workflow", "run_runner_cpu", "manual__2026-01-01T00:00:00+00:00", 0, 1)
    b = container_name("helical_model_workflow", "run_runner_cpu", "manual__2026-01-01T00:00:00+00:00", 1, 1)
    c = container_name("helical_model_workflow", "run_runner_cpu", "manual__2026-01-01T00:00:00+00:00", 0, 2)
    assert len({a, b, c}) == 3
    assert all(ch.isalnum() or ch in "_.-" for ch in a)


def test_the_longest_run_ids_keep_their_tries_apart():
    """Names are cut at 200 characters: a run's folder name (safe_run_id, 128 at most) leaves room for the rest."""
    from helical_workflow.discovery import safe_run_id

    for run_id in ("x" * 250, "y" * 128, "manual__" + ":" * 242):
        names = {tries: container_name("helical_model_workflow", "run_runner_cpu", safe_run_id(run_id), 1023, tries)
                 for tries in (1, 2, 10)}
        assert all(len(name) <= 200 and name.endswith(f".1023.try{tries}") for tries, name in names.items()), names


@pytest.fixture
def captured(monkeypatch):
    """Run execute() up to the Docker call and keep the operator's state at that moment."""
    seen = {}

    def fake_execute(self, context):
        seen.update(image=self.image, device_requests=self.device_requests, command=self.command,
                    labels=self.labels, name=self.container_name, env=self.environment, mem_limit=self.mem_limit,
                    host_config=self.cli.create_host_config(mem_limit=self.mem_limit))
        summary = '{"run_id": "r", "ok": true, "datasets": []}'
        # stdout and stderr interleave: a log line may follow the summary in the stream.
        return ["INFO loading", summary, "INFO dataset x: ok"]

    def containers(filters):
        if "helical.gpu_slot" in filters["label"]:  # the GPU slots running runners hold
            return seen.get("running_gpu_runners", [])
        seen["filters"] = filters
        return seen.get("running_earlier_tries", [])

    monkeypatch.setattr(DockerOperator, "execute", fake_execute)
    monkeypatch.setattr(RunnerOperator, "cli", SimpleNamespace(
        remove_container=lambda _id: None, containers=containers, create_host_config=lambda **kw: kw,
        stop=lambda cid, timeout: seen.setdefault("stopped", []).append((cid, timeout))), raising=False)
    return seen


def _context(task_id: str):
    ti = SimpleNamespace(dag_id="helical_model_workflow", task_id=task_id, map_index=2, try_number=1)
    return {"ti": ti, "params": PARAMS, "run_id": RUN_ID}


def _operator(monkeypatch, gpu: bool) -> RunnerOperator:
    monkeypatch.setenv("HELICAL_RUNNER_CPUS", "0.5")
    monkeypatch.setenv("HELICAL_RUNNER_MEMORY", "3g")
    monkeypatch.setenv("HELICAL_RUNNER_CPU_IMAGE", "helical-runner:cpu")
    monkeypatch.setenv("HELICAL_RUNNER_GPU_IMAGE", "helical-runner:gpu")
    monkeypatch.setenv("HELICAL_STATSD_HOST", "statsd-exporter")
    op = RunnerOperator(task_id="run_runner_gpu" if gpu else "run_runner_cpu", queue="gpu" if gpu else "cpu",
                        datasets=[{"dataset": "/data/a.h5ad", "dataset_name": "a"}], gpu=gpu)
    op.container = {"Id": "abc"}
    return op


def test_cpu_route_runs_the_cpu_image_with_labels(monkeypatch, captured):
    summary = _operator(monkeypatch, gpu=False).execute(_context("run_runner_cpu"))
    assert summary == {"run_id": "r", "ok": True, "datasets": []}
    assert captured["image"] == "helical-runner:cpu" and captured["device_requests"] is None
    assert captured["labels"]["helical.queue"] == "cpu"
    assert captured["labels"]["helical.run_id"] == RUN_FOLDER
    assert captured["command"][captured["command"].index("--run-id") + 1] == RUN_FOLDER
    assert captured["command"][captured["command"].index("--device") + 1] == "cpu"
    assert captured["env"] == {"STATSD_HOST": "statsd-exporter", "STATSD_PORT": "9125"}
    # Bounded by .env: a CPU quota (torch's threads follow it) and a memory limit.
    assert captured["host_config"] == {"mem_limit": "3g", "memswap_limit": "3g", "nano_cpus": 500_000_000,
                                       "read_only": True, "tmpfs": {"/tmp": "size=2g"}, "cap_drop": ["ALL"],
                                       "security_opt": ["no-new-privileges"], "pids_limit": 512}


def test_gpu_route_requests_one_gpu_by_id(monkeypatch, captured, tmp_path):
    monkeypatch.delenv("HELICAL_GPU_WORKER_MODE", raising=False)
    monkeypatch.setenv("HELICAL_GPU_DEVICES", "0,1,2")
    monkeypatch.setenv("HELICAL_GPU_LOCK_DIR", str(tmp_path))
    # GPU 0 is still used by a runner whose task's worker died: the next GPU is taken.
    captured["running_gpu_runners"] = [{"Labels": {"helical.gpu_slot": "0.0", "helical.gpu_device": "0"}}]
    _operator(monkeypatch, gpu=True).execute(_context("run_runner_gpu"))
    assert captured["image"] == "helical-runner:gpu"
    (request,) = captured["device_requests"]
    # A device id, never a count: Docker turns count=1 into device "0" on every runner.
    assert request["DeviceIDs"] == ["1"] and request["Count"] == 0 and request["Capabilities"] == [["gpu"]]
    assert captured["labels"]["helical.gpu_slot"] == "1.0" and captured["labels"]["helical.gpu_device"] == "1"
    assert captured["command"][captured["command"].index("--device") + 1] == "cuda"


def test_a_gpu_worker_without_gpus_fails_naming_the_setting(monkeypatch, captured):
    monkeypatch.delenv("HELICAL_GPU_WORKER_MODE", raising=False)
    monkeypatch.delenv("HELICAL_GPU_DEVICES", raising=False)
    with pytest.raises(AirflowException, match="GPU_DEVICES"):
        _operator(monkeypatch, gpu=True).execute(_context("run_runner_gpu"))
    assert "image" not in captured  # no container was made


def test_gpu_test_worker_requests_no_device(monkeypatch, captured):
    monkeypatch.setenv("HELICAL_GPU_WORKER_MODE", "test")
    monkeypatch.delenv("HELICAL_GPU_DEVICES", raising=False)
    _operator(monkeypatch, gpu=True).execute(_context("run_runner_gpu"))
    assert captured["image"] == "helical-runner:cpu" and captured["device_requests"] is None
    assert captured["labels"]["helical.gpu_mode"] == "test"


def test_gpu_test_worker_with_fake_devices_requests_one(monkeypatch, captured, tmp_path):
    monkeypatch.setenv("HELICAL_GPU_WORKER_MODE", "test")
    monkeypatch.setenv("HELICAL_GPU_DEVICES", "7")
    monkeypatch.setenv("HELICAL_GPU_LOCK_DIR", str(tmp_path))
    _operator(monkeypatch, gpu=True).execute(_context("run_runner_gpu"))
    assert captured["image"] == "helical-runner:cpu" and captured["device_requests"][0]["DeviceIDs"] == ["7"]


def test_a_runner_left_running_by_an_earlier_try_is_stopped_first(monkeypatch, captured):
    captured["running_earlier_tries"] = [{"Id": "orphan", "Names": ["/helical-run_runner_cpu-try1"]}]
    _operator(monkeypatch, gpu=False).execute(_context("run_runner_cpu"))
    assert captured["stopped"] == [("orphan", 10)]
    assert captured["filters"] == {"status": "running", "label": [
        "helical.dag_id=helical_model_workflow", "helical.task_id=run_runner_cpu",
        f"helical.run_id={RUN_FOLDER}", "helical.map_index=2"]}
