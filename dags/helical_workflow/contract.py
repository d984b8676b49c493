"""What the workflow and the runner image agree on, written once on this side (docs/contracts.md).

The runner's side is runner/src/helical_runner/contract.py; tests/contract/ checks that the two agree, and
that the files which cannot import either (compose, PromQL, dashboards, .env.example, the Makefile) say the
same. No Airflow import here, so the host's tests read it too.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

# Celery queues the runner tasks are routed to (worker commands in compose consume them).
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
QUEUES = (CPU_QUEUE, GPU_QUEUE)
# The `device` param of a run, and what the runner is told (it takes cpu|cuda; the workflow decides).
DEVICE_PARAMS = ("auto", "cpu", "gpu")
RUNNER_DEVICES = {CPU_QUEUE: "cpu", GPU_QUEUE: "cuda"}
CLASSIFIER_MODES = ("auto", "on", "off")

# Where a runner container sees the host's folders (its image's defaults).
RUNNER_DATA_DIR = PurePosixPath("/data")
RUNNER_RESULTS_DIR = PurePosixPath("/results")
RUNNER_MODELS_DIR = PurePosixPath("/models")

# Runner exit codes that mean bad input (1) or configuration (2): retrying cannot help. Anything else
# (3 unexpected, 137 killed, 143 stopped) is retried with backoff.
EXIT_BAD_INPUT, EXIT_BAD_CONFIG = 1, 2
RUNNER_INPUT_ERRORS = {EXIT_BAD_INPUT, EXIT_BAD_CONFIG}

# The default runner images (.env's RUNNER_CPU_IMAGE / RUNNER_GPU_IMAGE override them).
RUNNER_IMAGES = {CPU_QUEUE: "helical-runner:cpu", GPU_QUEUE: "helical-runner:gpu"}
# Every runner container carries it: docker-policy lets workers act only on containers that do.
RUNNER_LABEL = "helical.dag_id"


def runner_command(datasets: list[dict[str, str | None]], run_id: str, params: dict[str, Any],
                   device: str) -> list[str]:
    """The helical-runner CLI call for one container's datasets, each `--data PATH [--name NAME]` in order
    (flags as in docs/contracts.md)."""
    command = ["helical-runner", "run"]
    for planned in datasets:
        command += ["--data", str(planned["dataset"])]
        if planned["dataset_name"]:
            command += ["--name", str(planned["dataset_name"])]
    command += ["--run-id", run_id, "--device", device]
    command += ["--max-cells", str(int(params.get("max_cells") or 0))]
    command += ["--classifier", str(params.get("classifier") or "auto")]
    if params.get("batch_size"):
        command += ["--batch-size", str(int(params["batch_size"]))]
    return command
