"""Which .h5ad files under the data folder a run processes, and the name of each one's outputs."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path, PurePosixPath
from typing import TypedDict

from helical_workflow.contract import RUNNER_DATA_DIR


class PlannedDataset(TypedDict):
    """One dataset of a run: the runner's path and the output name."""

    dataset: str
    dataset_name: str | None  # None for the demo run of an empty folder: the runner names it


class RunnerPack(TypedDict):
    """One mapped runner task's arguments (RunnerOperator's keywords): the datasets its one container runs."""

    datasets: list[PlannedDataset]


class DataPatternError(ValueError):
    """The `data` param points outside the data folder or matches no dataset."""


def discover_datasets(data_dir: Path, pattern: str) -> list[str]:
    """Runner-side paths (/data/...) of the datasets that `pattern` selects under `data_dir`.

    An empty pattern selects every .h5ad; an empty folder yields ["/data"], for which the runner uses its
    bundled demo dataset. A pattern is a file, a folder or a glob relative to the data folder.
    """
    pattern = pattern.strip().removeprefix(str(RUNNER_DATA_DIR)).lstrip("/")
    if ".." in PurePosixPath(pattern).parts:
        raise DataPatternError(f"data={pattern!r} leaves the data folder: give a path or glob under /data")
    every = sorted(p for p in data_dir.rglob("*.h5ad") if p.is_file())
    if not pattern:
        return [str(RUNNER_DATA_DIR / p.relative_to(data_dir)) for p in every] or [str(RUNNER_DATA_DIR)]
    target = data_dir / pattern
    if target.is_dir():
        chosen = [p for p in every if target in p.parents]
    else:
        chosen = sorted(p for p in data_dir.glob(pattern) if p.is_file() and p.suffix == ".h5ad")
    if not chosen:
        raise DataPatternError(
            f"data={pattern!r} matches no .h5ad file under ./data ({len(every)} present): "
            "drop the files into ./data or fix the pattern"
        )
    return [str(RUNNER_DATA_DIR / p.relative_to(data_dir)) for p in chosen]


def plan_datasets(paths: list[str]) -> list[PlannedDataset]:
    """Each dataset with an output name unique within the run, decided here once for the runner, the summary
    and the load test: the path under /data without `.h5ad`, folders joined by `__` (`lab1/x.h5ad` ->
    `lab1__x`), so `a/x.h5ad` and `b/x.h5ad` never share an output folder; a clash (`a__x.h5ad` beside
    `a/x.h5ad`) gets `-2`, `-3`... in path order.
    """
    planned: list[PlannedDataset] = []
    used: set[str] = set()
    for path in paths:
        relative = PurePosixPath(path).relative_to(RUNNER_DATA_DIR)
        if not relative.parts:
            planned.append({"dataset": path, "dataset_name": None})
            continue
        base = "__".join((*relative.parent.parts, relative.name.removesuffix(".h5ad")))
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        planned.append({"dataset": path, "dataset_name": name})
    return planned


class PackingPlan(TypedDict):
    """How a run's datasets were packed into runner containers (summary.json's `packing`)."""

    datasets: int
    runner_tasks: int
    datasets_per_task_asked: int
    datasets_per_task: int  # the largest pack
    automatic: bool  # packed more than asked, to stay within max_runner_tasks
    max_runner_tasks: int


class TooManyDatasetsError(ValueError):
    """More datasets than one run takes (MAX_DATASETS_PER_RUN): no retry can help, the run must be split."""


def pack_datasets(planned: list[PlannedDataset], per_task: int) -> list[RunnerPack]:
    """The planned datasets in order, `per_task` at most to a runner container, the packs as even as can be
    (11 datasets at 10 per task: 6 + 5, not 10 + 1), so a container's fixed start-up cost is paid per pack."""
    if per_task < 1:
        raise ValueError(f"datasets_per_task must be >= 1, got {per_task}")
    count = -(-len(planned) // per_task)
    bounds = [len(planned) * i // count for i in range(count + 1)] if count else [0]
    return [{"datasets": planned[start:end]} for start, end in itertools.pairwise(bounds)]


def plan_packs(planned: list[PlannedDataset], asked_per_task: int, max_runner_tasks: int,
               max_datasets: int) -> list[RunnerPack]:
    """Packs of `asked_per_task` datasets, or of more when that would make more than `max_runner_tasks` runner
    tasks: a run maps one task per pack, and Airflow fails a mapping longer than its max_map_length (which the
    stack sets to the same MAX_RUNNER_TASKS). Runner tasks past the cluster's runner slots would only wait, so
    a bound at or above the slots costs no parallelism. More than `max_datasets` is refused, naming the fix.
    """
    if len(planned) > max_datasets:
        raise TooManyDatasetsError(
            f"{len(planned)} datasets selected, and one run takes at most {max_datasets} (MAX_DATASETS_PER_RUN in "
            ".env): select fewer with the run's `data` param (a folder or glob under ./data) and trigger several "
            "runs, or raise MAX_DATASETS_PER_RUN")
    return pack_datasets(planned, max(asked_per_task, -(-len(planned) // max_runner_tasks)))


def describe_packing(packs: list[RunnerPack], asked_per_task: int, max_runner_tasks: int) -> PackingPlan:
    """What plan_packs decided, read back from its packs (the summary has the packs, not the decision)."""
    largest = max((len(pack["datasets"]) for pack in packs), default=0)
    return {"datasets": sum(len(pack["datasets"]) for pack in packs), "runner_tasks": len(packs),
            "datasets_per_task_asked": asked_per_task, "datasets_per_task": largest,
            "automatic": largest > asked_per_task, "max_runner_tasks": max_runner_tasks}


def planned_of(packs: list[RunnerPack]) -> list[PlannedDataset]:
    """Every dataset of a run's packs, in plan order."""
    return [dataset for pack in packs for dataset in pack["datasets"]]


# A run id used as it is for its results folder and its containers' names: Docker's name rule (an ASCII letter or
# digit first, then letters, digits, '_', '.', '-'), short enough for container_name's 200 characters; never '.',
# '..' or a hidden folder.
SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# What safe_run_id gives any other id: the id made safe (shortened), '--', then the SHA-256 of the whole id.
HASHED_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}--[0-9a-f]{64}")


def safe_run_id(run_id: str) -> str:
    """The folder (results/<this>/) and container name of a run: the run id itself when it is safe, else the id with
    '_' for each unsafe character and its SHA-256 after '--' (manual__2026-01-01T00:00:00+00:00 has ':' and '+').

    Two distinct run ids never share a folder: a safe id that looks hashed is hashed too, so an id kept as it is never
    equals another's hashed form, and hashed forms differ by their full SHA-256.
    """
    if SAFE_RUN_ID.fullmatch(run_id) and not HASHED_RUN_ID.fullmatch(run_id):
        return run_id
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:59]
    if not readable[:1].isascii() or not readable[:1].isalnum():
        readable = "r" + readable[:58]  # '.', '..', '-x': never a hidden folder or an option to the runner's CLI
    return f"{readable}--{hashlib.sha256(run_id.encode()).hexdigest()}"


def run_folder(results_dir: Path, run_id: str) -> Path:
    """results/<safe_run_id>: where the runners of this run write, and its summary.json."""
    folder = results_dir / safe_run_id(run_id)
    if folder.parent != results_dir or folder.name in ("", ".", ".."):  # safe_run_id's promise, checked where it matters
        raise ValueError(f"run id {run_id!r} maps outside {results_dir}")
    return folder
