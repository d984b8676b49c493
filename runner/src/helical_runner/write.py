"""Outputs: one folder per run, each dataset staged in a hidden folder and moved into place when complete."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helical_runner.errors import ConfigError

LOG = logging.getLogger(__name__)

EMBEDDING_KEY = "X_scgpt"


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename over `target`: readers see the old file or the whole new one, never half."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def create_run_dir(output_dir: Path, run_id: str) -> Path:
    """OUTPUT_DIR/<run_id>, shared by the datasets of one run (the workflow starts one container per dataset).

    Runs never share a folder: each has its own RUN_ID (the default one is a timestamp plus a random suffix).
    """
    run_dir = output_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def ensure_writable(output_dir: Path) -> None:
    """Fail before the model loads, naming the fix, when this uid cannot write the results folder."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pass
    if not os.access(output_dir, os.W_OK):
        raise ConfigError(
            f"OUTPUT_DIR {output_dir} is not writable by uid {os.getuid()}: run the container with "
            '--user "$(id -u):$(id -g)" (the owner of the folder), or make the folder writable'
        )


@contextmanager
def staged_dataset(run_dir: Path, dataset: str) -> Iterator[Path]:
    """A hidden folder to write a dataset's outputs into, moved to run_dir/<dataset> once the block succeeds.

    A failure leaves nothing behind; a retry of the same run replaces the earlier outputs whole.
    """
    staged = run_dir / f".{dataset}.{os.getpid()}.tmp"
    old = run_dir / f".{dataset}.{os.getpid()}.old"
    target = run_dir / dataset
    staged.mkdir()
    try:
        yield staged
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_embeddings(folder: Path, obs: pd.DataFrame, embeddings: np.ndarray, uns: dict[str, Any]) -> Path:
    import anndata as ad

    adata = ad.AnnData(obs=obs.copy(), obsm={EMBEDDING_KEY: embeddings}, uns=uns)
    target = folder / "embeddings.h5ad"
    adata.write_h5ad(target)
    return target


def write_metrics(folder: Path, metrics: dict[str, Any]) -> Path:
    # Written into the staging folder, which `staged_dataset` publishes whole: no temp file needed here.
    target = folder / "metrics.json"
    target.write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    return target


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
