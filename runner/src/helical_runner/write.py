"""Outputs: one folder per run, each dataset staged in a hidden folder and published by one rename.

Exactly one output per (run, dataset): the first complete one published wins. A later or concurrent writer
of the same dataset (a retry, an orphaned earlier try) finds it published and keeps it, never replaces it.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helical_runner.errors import ConfigError

LOG = logging.getLogger(__name__)

EMBEDDING_KEY = "X_scgpt"


STAGING_SUFFIX = ".tmp"


def staging_name(name: str) -> str:
    """A hidden name unique to this writer: the PID alone is 1 in every container."""
    return f".{name}.{uuid.uuid4().hex}{STAGING_SUFFIX}"


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename over `target`: readers see the old file or the whole new one, never half."""
    tmp = target.with_name(staging_name(target.name))
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
    """Fail before the model loads when the results folder cannot be written, by writing and removing a file.

    Not only this uid's permission (a ConfigError naming the fix, never retried): on a worker host the folder is
    the shared filesystem, and a read-only, stale or failing mount is that host's fault, so its OSError (exit 3)
    is retried, on another host if this one stays broken.
    """
    probe = output_dir / staging_name("write-probe")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except PermissionError:
        raise ConfigError(
            f"OUTPUT_DIR {output_dir} is not writable by uid {os.getuid()}: run the container with "
            '--user "$(id -u):$(id -g)" (the owner of the folder), or make the folder writable'
        ) from None
    except OSError as err:
        raise OSError(err.errno, f"cannot write a file in OUTPUT_DIR {output_dir} ({err.strerror}): check this "
                                 "host's mount of the results folder (the shared filesystem, docs/scale-out.md)"
                      ) from err


def published_metrics(run_dir: Path, dataset: str) -> dict[str, Any] | None:
    """The metrics.json of a dataset already published in this run (complete by construction), else None."""
    try:
        return json.loads((run_dir / dataset / "metrics.json").read_text())
    except FileNotFoundError:
        return None


def remove_stale_staging(run_dir: Path, dataset: str) -> None:
    """Staging folders of `dataset` left by writers that died (killed containers, earlier tries).

    Called when a try starts, after the workflow stopped any earlier try's container: a writer still
    alive then would only lose its own staging folder, fail, and find the published output on retry.
    """
    # Exactly `staging_name`'s shape, so the staging folder of a dataset named "<dataset>.x" is not matched.
    for stale in run_dir.glob(f".{glob.escape(dataset)}.{'[0-9a-f]' * 32}{STAGING_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)


def failure_file(run_dir: Path, dataset: str) -> Path:
    """Where a failed dataset's error is kept for the run's summary (removed once the dataset is published)."""
    return run_dir / f"{dataset}.failed.json"


def record_failure(run_dir: Path, dataset: str, error: str, retryable: bool) -> None:
    payload = {"dataset": dataset, "error": error, "exit_class": "unexpected" if retryable else "bad_input"}
    try:
        write_atomically(failure_file(run_dir, dataset), lambda tmp: tmp.write_text(json.dumps(payload) + "\n"))
    except OSError as exc:  # a full disk must not hide the error it caused: the log still has it
        LOG.warning("cannot record the failure of %s in %s: %s", dataset, run_dir, exc)


class AlreadyPublished(Exception):
    """Another writer published this dataset first; its output stands (see `published_metrics`)."""


@contextmanager
def staged_dataset(run_dir: Path, dataset: str) -> Iterator[Path]:
    """A hidden folder to write a dataset's outputs into, published as run_dir/<dataset> when the block succeeds.

    Publishing is one rename, which fails when run_dir/<dataset> exists: then AlreadyPublished is raised
    and the earlier output stays whole. A failure leaves nothing behind.
    """
    staged = run_dir / staging_name(dataset)
    staged.mkdir()
    try:
        yield staged
        try:
            os.rename(staged, run_dir / dataset)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise AlreadyPublished(str(run_dir / dataset)) from None
            raise
        failure_file(run_dir, dataset).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


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
