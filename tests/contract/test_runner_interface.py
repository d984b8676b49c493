"""The workflow and the runner image agree: mount points, exit codes, devices, flags (docs/contracts.md)."""

from __future__ import annotations

import re
from pathlib import Path

from helical_runner import contract as runner
from helical_runner.cli import build_parser
from helical_runner.config import RUN_OPTIONS, settings_from
from helical_workflow import contract as workflow

ROOT = Path(__file__).resolve().parents[2]


def test_the_workflow_mounts_the_folders_where_the_runner_looks():
    assert (str(workflow.RUNNER_DATA_DIR), str(workflow.RUNNER_RESULTS_DIR), str(workflow.RUNNER_MODELS_DIR)) == (
        runner.DATA_DIR, runner.OUTPUT_DIR, runner.MODEL_DIR)
    defaults = {env: default for _flag, env, default, _help in RUN_OPTIONS}
    assert (defaults["DATA_DIR"], defaults["OUTPUT_DIR"], defaults["MODEL_DIR"]) == (
        runner.DATA_DIR, runner.OUTPUT_DIR, runner.MODEL_DIR)
    dockerfile = (ROOT / "runner" / "Dockerfile").read_text()
    for env, path in (("DATA_DIR", runner.DATA_DIR), ("OUTPUT_DIR", runner.OUTPUT_DIR), ("MODEL_DIR", runner.MODEL_DIR)):
        assert re.search(rf"\b{env}={re.escape(path)}\b", dockerfile), f"runner/Dockerfile: ENV {env}={path}"


def test_only_bad_input_and_configuration_are_not_retried():
    assert workflow.RUNNER_INPUT_ERRORS == {runner.EXIT_DATASET_FAILED, runner.EXIT_CONFIG}
    assert (workflow.EXIT_BAD_INPUT, workflow.EXIT_BAD_CONFIG) == (runner.EXIT_DATASET_FAILED, runner.EXIT_CONFIG)
    table = re.findall(r"^\s*\| (\d+) \| .*\| (.+) \|$", (ROOT / "docs" / "contracts.md").read_text(), re.M)
    documented = {int(code): action for code, action in table}
    assert set(documented) == {runner.EXIT_OK, runner.EXIT_DATASET_FAILED, runner.EXIT_CONFIG,
                               runner.EXIT_UNEXPECTED, 137, runner.EXIT_TERMINATED}, documented
    assert {code for code, action in documented.items() if "no retry" in action} == workflow.RUNNER_INPUT_ERRORS


def test_the_workflow_sends_devices_modes_and_flags_the_runner_takes():
    assert set(workflow.RUNNER_DEVICES.values()) <= set(runner.DEVICES)
    assert workflow.CLASSIFIER_MODES == runner.CLASSIFIER_MODES
    pack = [{"dataset": "/data/a.h5ad", "dataset_name": "a"}, {"dataset": "/data/lab/a.h5ad", "dataset_name": "lab__a"}]
    command = workflow.runner_command(pack, "r", workflow.RunParams(max_cells=5, classifier="on", batch_size=8), "cpu")
    assert command[:2] == ["helical-runner", "run"]
    sent = {word for word in command if word.startswith("--")}
    assert sent <= {flag for flag, _env, _default, _help in RUN_OPTIONS}, sent
    assert sent == {"--data", "--run-id", "--device", "--name", "--max-cells", "--classifier", "--batch-size"}
    # The runner's own parser reads the pack back, each file with its output name.
    settings = settings_from(build_parser().parse_args(command[1:]), {})
    assert [(str(path), name) for path, name in zip(settings.data, settings.names, strict=True)] == [
        ("/data/a.h5ad", "a"), ("/data/lab/a.h5ad", "lab__a")]
    assert (settings.run_id, settings.device, settings.max_cells, settings.batch_size) == ("r", "cpu", 5, 8)


def test_the_runner_readme_lists_every_option_with_its_env_var():
    readme = (ROOT / "runner" / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    listed = {(flag, env) for line in rows
              for flag, env in zip(re.findall(r"`(--[a-z-]+)`", line.split("|")[1]),
                                   re.findall(r"`([A-Z_]+)`", line.split("|")[2]), strict=True)}
    assert listed == {(flag, env) for flag, env, _default, _help in RUN_OPTIONS}


def test_the_runner_takes_every_run_folder_name_the_workflow_gives():
    """The DAG passes safe_run_id (RunnerOperator) and writes summary.json into run_folder: the same folder."""
    from helical_workflow.discovery import safe_run_id

    pack = [{"dataset": "/data/a.h5ad", "dataset_name": "a"}]
    for run_id in ("manual__2026-01-01T00:00:00+00:00", ".", "..", "-x", "--help", "loadtest__20260101T000000000Z__0001"):
        command = workflow.runner_command(pack, safe_run_id(run_id), workflow.RunParams(), "cpu")
        assert settings_from(build_parser().parse_args(command[1:]), {}).run_id == safe_run_id(run_id), run_id
