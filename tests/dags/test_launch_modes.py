"""One contract, two engines (RUNNER_LAUNCH_MODE): the same image, CLI, environment and labels, the same GPU
routes, the summary returned, exits judged alike: bad input fails at once, anything else is retried."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from launch_engines import ENGINES, LINES, RUN_FOLDER, SETTINGS_ENV, SUMMARY

from helical_workflow.contract import RunParams, runner_command
from helical_workflow.runner_launch import runner_operator_class


@pytest.fixture(params=sorted(ENGINES))
def engine(request, monkeypatch):
    for name, value in SETTINGS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HELICAL_GPU_WORKER_MODE", raising=False)
    return ENGINES[request.param](monkeypatch)


def test_a_cpu_runner_gets_the_cpu_image_the_cli_the_environment_and_the_labels(engine):
    launched = engine.launch(gpu=False)
    assert launched.image == "helical-runner:cpu" and launched.gpus == 0
    assert launched.command == runner_command(
        [{"dataset": "/data/lab/a.h5ad", "dataset_name": "lab__a"}, {"dataset": "/data/b.h5ad", "dataset_name": "b"}],
        RUN_FOLDER, RunParams(max_cells=100, classifier="off"), "cpu")
    assert launched.environment == {"STATSD_HOST": "statsd-exporter", "STATSD_PORT": "9125"}
    assert launched.labels == {
        "helical.dag_id": "helical_model_workflow", "helical.task_id": "run_runner_cpu",
        # A label holds 63 characters: a pod's is the run folder's name shortened with a hash of it (the provider's).
        "helical.run_id": RUN_FOLDER if engine.mode == "docker" else make_safe_label_value(RUN_FOLDER),
        "helical.queue": "cpu",
        "helical.dataset": "/data/lab/a.h5ad,/data/b.h5ad", "helical.map_index": "2", "helical.gpu_mode": "none"}


def test_a_gpu_runner_gets_one_gpu_and_the_gpu_image(engine):
    launched = engine.launch(gpu=True)
    assert (launched.image, launched.gpus, launched.labels["helical.gpu_mode"]) == ("helical-runner:gpu", 1, "device")
    assert launched.command[launched.command.index("--device") + 1] == "cuda"


def test_the_test_only_gpu_worker_runs_the_cpu_image_without_a_gpu(engine, monkeypatch):
    monkeypatch.setenv("HELICAL_GPU_WORKER_MODE", "test")
    launched = engine.launch(gpu=True)
    assert (launched.image, launched.gpus, launched.labels["helical.gpu_mode"]) == ("helical-runner:cpu", 0, "test")
    assert launched.command[launched.command.index("--device") + 1] == "cpu"
    assert launched.labels["helical.queue"] == "gpu"


def test_the_summary_is_read_from_the_streamed_log_lines(engine):
    assert engine.launch(gpu=False).summary == SUMMARY
    assert engine.launch(gpu=False, lines=LINES[:1]).summary is None


@pytest.mark.parametrize("code", [1, 2])
def test_bad_input_fails_the_task_at_once(engine, code):
    with pytest.raises(AirflowFailException, match=rf"rejected /data/lab/a.h5ad,/data/b.h5ad \(exit {code}\)"):
        engine.launch(gpu=False, exit_code=code)


@pytest.mark.parametrize(("code", "oom", "why"), [
    (3, False, "failed unexpectedly"),
    (137, False, "killed"),
    (137, True, r"ran out of memory \(limit 3"),
    (143, False, "stopped"),
    (70, False, "exited 70"),
])
def test_any_other_exit_is_retried_with_its_reason(engine, code, oom, why):
    with pytest.raises(AirflowException, match=why) as raised:
        engine.launch(gpu=False, exit_code=code, oom=oom)
    assert not isinstance(raised.value, AirflowFailException)
    assert "retried while tries remain" in str(raised.value)


@pytest.mark.parametrize(("mode", "operator"), [("docker", "RunnerOperator"), ("kubernetes", "RunnerPodOperator")])
def test_the_dag_runs_its_runners_with_the_operator_of_the_launch_mode(mode, operator):
    # A fresh interpreter: the DAG file reads the setting when it is parsed.
    code = ("import sys; sys.path.insert(0, '/opt/airflow/dags'); import helical_model_workflow as w; "
            "print(sorted({t.operator_class.__name__ for t in w.dag.tasks if t.task_id.startswith('run_runner')}))")
    env = {**os.environ, "HELICAL_RUNNER_LAUNCH_MODE": mode}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip().splitlines()[-1] == str([operator])
    assert runner_operator_class(mode).__name__ == operator


def test_an_unknown_launch_mode_names_the_setting_and_the_choices():
    from helical_workflow.settings import load_settings

    with pytest.raises(ValueError, match=r"RUNNER_LAUNCH_MODE.*docker, kubernetes"):
        load_settings({"HELICAL_RUNNER_LAUNCH_MODE": "podman"})
