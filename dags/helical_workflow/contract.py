"""What the workflow and the runner image agree on, on this side (docs/contracts.md).

The shared names come from names.py, which `make generate` renders from names.yaml, like the runner's copy; the
rest is the workflow's own. No Airflow import here, so the host's tools read it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import PurePosixPath
from typing import Any

from helical_workflow.names import (
    CPU_QUEUE,
    DATA_DIR,
    EXIT_CONFIG,
    EXIT_DATASET_FAILED,
    GPU_QUEUE,
    MODELS_DIR,
    RESULTS_DIR,
    RUNNER_IMAGES,
    RUNNER_LABEL,
)

__all__ = ["CPU_QUEUE", "GPU_QUEUE", "RUNNER_IMAGES", "RUNNER_LABEL"]

QUEUES = (CPU_QUEUE, GPU_QUEUE)
# The `device` param of a run, and what the runner is told (it takes cpu|cuda; the workflow decides).
DEVICE_PARAMS = ("auto", "cpu", "gpu")
RUNNER_DEVICES = {CPU_QUEUE: "cpu", GPU_QUEUE: "cuda"}
CLASSIFIER_MODES = ("auto", "on", "off")

# Where a runner container sees the host's folders (its image's defaults).
RUNNER_DATA_DIR = PurePosixPath(DATA_DIR)
RUNNER_RESULTS_DIR = PurePosixPath(RESULTS_DIR)
RUNNER_MODELS_DIR = PurePosixPath(MODELS_DIR)

# Runner exits that mean bad input or configuration: retrying cannot help (names.yaml says which are retried).
EXIT_BAD_INPUT, EXIT_BAD_CONFIG = EXIT_DATASET_FAILED, EXIT_CONFIG
RUNNER_INPUT_ERRORS = {EXIT_BAD_INPUT, EXIT_BAD_CONFIG}


@dataclass(frozen=True)
class RunParams:
    """A run's params (the DAG's `params`, the load test's conf), read once into one typed value; its fields are
    the params the DAG takes, with their defaults."""

    data: str = ""
    device: str = "auto"
    max_cells: int = 0
    classifier: str = "auto"
    # One dataset per runner container unless a run asks otherwise: no dataset waits for another's container;
    # docs/benchmarks/README.md measures what packing small files gains.
    datasets_per_task: int = 1
    batch_size: int | None = None  # None: the runner's default

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> RunParams:
        """From Airflow's params (validated against the DAG's schema), an empty value meaning the default."""
        given = {f.name: params[f.name] for f in fields(cls) if params.get(f.name) not in (None, "")}
        return cls(**given)


RUN_PARAM_NAMES = tuple(f.name for f in fields(RunParams))


def runner_command(datasets: list[dict[str, str | None]], run_id: str, params: RunParams, device: str) -> list[str]:
    """The helical-runner CLI call for one container's datasets, each `--data PATH [--name NAME]` in order
    (flags as in docs/contracts.md)."""
    command = ["helical-runner", "run"]
    for planned in datasets:
        command += ["--data", str(planned["dataset"])]
        if planned["dataset_name"]:
            command += ["--name", str(planned["dataset_name"])]
    command += ["--run-id", run_id, "--device", device]
    command += ["--max-cells", str(params.max_cells), "--classifier", params.classifier]
    if params.batch_size:
        command += ["--batch-size", str(params.batch_size)]
    return command


def runner_summary(log_lines: list[str]) -> dict[str, Any] | None:
    """The runner's one-line JSON summary (docs/contracts.md): the last log line that starts with one.

    Docker reads stdout and stderr through separate pipes, so a stderr line may follow the JSON on its line
    (runners before #13 wrote the newline apart): only the JSON prefix of a line is read.
    """
    for line in reversed(log_lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                summary, _end = json.JSONDecoder().raw_decode(line)
            except ValueError:
                continue
            if isinstance(summary, dict) and "datasets" in summary:
                return summary
    return None
