"""What one load test asks for: the load's shape, the DAG params of each run, where to report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

from helical_workflow.contract import CLASSIFIER_MODES, RUN_PARAM_NAMES
from helical_workflow.contract import DEVICE_PARAMS as DEVICES
from helical_workflow.names import DAG_ID

__all__ = ["CLASSIFIER_MODES", "DAG_ID", "DEVICES"]

RUN_ID_PREFIX = "loadtest"
# The DAG's params; a conf key outside these would be rejected or, worse, silently ignored.
DAG_PARAM_NAMES = RUN_PARAM_NAMES


@dataclasses.dataclass(frozen=True)
class LoadConfig:
    """Everything `run_load` needs; the CLI and the e2e test both build one of these."""

    runs: int = 6
    # Max runs of ours not yet finished; None = no cap ("all at once" unless `rate` is set).
    concurrency: int | None = None
    # Trigger pace in runs/minute; None = as fast as `concurrency` allows.
    rate: float | None = None
    # Dataset paths/globs as the DAG's `data` param sees them; several are used round-robin.
    data: tuple[str, ...] = ()
    device: str | None = None
    max_cells: int | None = None
    classifier: str | None = None
    datasets_per_task: int | None = None
    batch_size: int | None = None
    timeout_s: float = 1800.0
    poll_s: float = 3.0
    url: str = dataclasses.field(
        default_factory=lambda: os.environ.get("AIRFLOW_URL", "http://localhost:8080")
    )
    username: str = dataclasses.field(
        default_factory=lambda: os.environ.get("_AIRFLOW_WWW_USER_USERNAME", "admin")
    )
    password: str = dataclasses.field(
        default_factory=lambda: os.environ.get("_AIRFLOW_WWW_USER_PASSWORD", "admin")
    )
    # A ready JWT for deployments whose auth manager has no username/password token endpoint.
    token: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("AIRFLOW_API_TOKEN") or None
    )
    # Flower, to tell which machine each worker is (optional: the report then says "(unknown)").
    flower_url: str | None = dataclasses.field(default_factory=lambda: os.environ.get("FLOWER_URL") or None)
    flower_user: str | None = dataclasses.field(default_factory=lambda: os.environ.get("FLOWER_USER") or None)
    flower_password: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("FLOWER_PASSWORD") or None
    )
    dag_id: str = DAG_ID
    # Task id prefix of the runner tasks (run_runner_cpu / run_runner_gpu in the DAG);
    # None = detect (Docker/Runner operators, else mapped tasks) for other DAGs.
    runner_task: str | None = "run_runner_"
    out_root: Path = Path("results/loadtest")
    # Out dir used as is (compare mode nests one per worker count); None = out_root/<ts>.
    out_dir: Path | None = None
    progress: bool = True
    # On timeout, mark our unfinished runs failed so the next load does not queue behind them.
    fail_unfinished: bool = True
    max_failure_logs: int = 10

    def conf_for(self, index: int) -> dict[str, object]:
        """The DAG run conf of run `index`; unset params are left out so the DAG default applies."""
        conf: dict[str, object] = {
            "data": self.data[index % len(self.data)] if self.data else None,
            "device": self.device,
            "max_cells": self.max_cells,
            "classifier": self.classifier,
            "datasets_per_task": self.datasets_per_task,
            "batch_size": self.batch_size,
        }
        return {k: v for k, v in conf.items() if v is not None}

    def validate(self) -> None:
        """Fail before touching the stack, naming the flag to fix."""
        if self.runs < 1:
            raise ValueError(f"--runs must be >= 1, got {self.runs}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"--rate must be > 0 runs/min, got {self.rate}")
        if self.device not in (None, *DEVICES):
            raise ValueError(f"--device must be {'|'.join(DEVICES)}, got {self.device!r}")
        if self.classifier not in (None, *CLASSIFIER_MODES):
            raise ValueError(f"--classifier must be {'|'.join(CLASSIFIER_MODES)}, got {self.classifier!r}")
        if self.datasets_per_task is not None and self.datasets_per_task < 1:
            raise ValueError(f"--datasets-per-task must be >= 1, got {self.datasets_per_task}")
        if self.timeout_s <= 0:
            raise ValueError(f"--timeout must be > 0 s, got {self.timeout_s}")


def timestamp(now: dt.datetime | None = None) -> str:
    """UTC stamp used in run ids and report dirs; sortable, valid in an Airflow run id, and in
    milliseconds so back-to-back loads (compare mode, a load whose triggers all failed) never clash."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"


def run_id_for(stamp: str, index: int) -> str:
    """`loadtest__<ts>__<n>`: the prefix is how we find, and only ever touch, our own runs."""
    return f"{RUN_ID_PREFIX}__{stamp}__{index:04d}"


def run_id_prefix(stamp: str) -> str:
    return f"{RUN_ID_PREFIX}__{stamp}__"
