"""One dataset through the verbs: load -> prepare -> embed -> classify -> write, and its outcome: a published
output, a kept earlier one, or a failure recorded for the run's summary (never an exception)."""

from __future__ import annotations

import functools
import logging
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from helical_runner import __version__
from helical_runner.classify import classify
from helical_runner.config import Settings
from helical_runner.discover import DatasetSource
from helical_runner.embed import Embedder
from helical_runner.errors import DatasetError, unexpected
from helical_runner.load import H5adReader
from helical_runner.metrics import Metrics
from helical_runner.model import LoadedModel
from helical_runner.subsample import choose_cells
from helical_runner.validate import check_shape, find_label_key, map_genes
from helical_runner.write import (
    AlreadyPublished,
    published_metrics,
    record_failure,
    remove_stale_staging,
    staged_dataset,
    write_embeddings,
    write_metrics,
)

LOG = logging.getLogger(__name__)


@dataclass
class Result:
    dataset: str
    status: str
    output_dir: str | None = None
    error: str | None = None
    cells: int | None = None
    cells_per_second: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    classifier: dict[str, Any] = field(default_factory=dict)
    startup_seconds: float | None = None  # container start -> first batch, on the container's first dataset only
    reused: bool = False  # published by an earlier try of the run: nothing was recomputed or re-counted
    retryable: bool = False  # failed unexpectedly (I/O, memory...): the run exits 3 so the workflow retries

    @classmethod
    def failed(cls, dataset: str, error: str, retryable: bool = False) -> Result:
        return cls(dataset, "failed", error=error, retryable=retryable)

    def summary(self) -> dict[str, Any]:
        """The per-dataset entry of the stdout JSON summary, exactly as contracts.md lists it."""
        return {"dataset": self.dataset, "status": self.status, "output_dir": self.output_dir, "error": self.error,
                "cells": self.cells, "cells_per_second": self.cells_per_second}


@functools.cache  # once per container: a pack's datasets would each read the same package metadata
def package_versions() -> dict[str, str]:
    found = {"helical_runner": __version__, "python": platform.python_version()}
    for package in ("helical", "torch", "scanpy", "anndata", "scikit-learn", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


class Stages:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 4)


def run_dataset(source: DatasetSource, settings: Settings, run_dir: Path, run_id: str, loaded: LoadedModel,
                embedder: Embedder, metrics: Metrics, datasets_in_container: int) -> Result:
    """The dataset's outcome, logged and counted; a failure is recorded in <dataset>.failed.json, so one bad
    dataset never stops the others."""
    started = time.perf_counter()
    LOG.info("dataset %s: %s", source.name, source.path)
    try:
        result = process_dataset(source, settings, run_dir, run_id, loaded, embedder, datasets_in_container)
    except DatasetError as exc:
        result = Result.failed(source.name, str(exc))
    except Exception as exc:
        LOG.exception("dataset %s: unexpected error", source.name)
        result = Result.failed(source.name, unexpected(source.path, exc), retryable=True)
    if result.status == "failed":
        LOG.error("dataset %s FAILED: %s", source.name, result.error)
        record_failure(run_dir, source.name, str(result.error), result.retryable)
        metrics.dataset_failed(source.name, time.perf_counter() - started, loaded.test_model)
    elif not result.reused:
        metrics.dataset_ok(source.name, result.stage_seconds, result.total_seconds, result.cells or 0,
                           result.cells_per_second or 0.0, loaded.test_model, result.classifier,
                           result.startup_seconds)
        LOG.info("dataset %s: ok, %d cells, %.1f cells/s, outputs in %s%s", source.name, result.cells,
                 result.cells_per_second, result.output_dir, " (TEST MODEL)" if loaded.test_model else "")
    return result


def process_dataset(source: DatasetSource, settings: Settings, run_dir: Path, run_id: str, loaded: LoadedModel,
                    embedder: Embedder, datasets_in_container: int) -> Result:
    """Raises DatasetError (or anything unexpected) on failure; run_dataset records it."""
    if (earlier := published_metrics(run_dir, source.name)) is not None:
        return kept_result(run_dir, source, earlier)
    remove_stale_staging(run_dir, source.name)
    started = time.perf_counter()
    timer = Stages()
    clock = embedder.clock
    first_in_container = clock is not None and "first_batch" not in clock.marks
    path = source.path
    with H5adReader(path) as reader:
        with timer.stage("load"):
            matrix = reader.choose_matrix()
            n_cells, n_genes = reader.shape_of(matrix.path)
            check_shape(path, n_cells, n_genes)
            obs = reader.obs()
            var = reader.var()
        with timer.stage("prepare"):
            mapping = map_genes(path, var, loaded.vocab, settings.gene_key)
            label_key = find_label_key(path, obs, settings.label_key, settings.classifier)
            labels = obs[label_key] if label_key else None
            rows = choose_cells(n_cells, settings.max_cells, labels)
            if rows.size < n_cells:
                LOG.info("%s: MAX_CELLS=%d: embedding %d of %d cells (seeded%s)", source.name, settings.max_cells,
                         rows.size, n_cells, ", stratified by " + label_key if label_key else "")
        with timer.stage("embed"):
            chunks = reader.iter_rows(rows, mapping.columns, settings.chunk_cells)
            embeddings = embedder.embed_chunks(chunks, rows.size, mapping.token_ids, source.name)
            embedded = np.isfinite(embeddings).all(axis=1)
            if not embedded.any():
                raise DatasetError(f"{path}: no cell expresses any of the {mapping.n_in_vocab} vocabulary genes; "
                                   "check that the matrix holds expression values for these genes")
            if not embedded.all():
                LOG.warning("%s: %d cell(s) express no vocabulary gene and are left out of the embeddings",
                            source.name, int((~embedded).sum()))
            rows, embeddings = rows[embedded], embeddings[embedded]
    timing = embedder.timing.report()
    LOG.info("%s: embedding took %.2fs: host built batches %.2fs, waited for them %.2fs, issued work %.2fs, "
             "read back %.2fs; device busy %s", source.name, timing["seconds"], timing["host_build_seconds"],
             timing["host_wait_seconds"], timing["host_launch_seconds"], timing["host_readback_seconds"],
             "n/a (cpu)" if timing["device_busy"] is None else f"{timing['device_busy']:.0%}")
    cells_per_second = round(rows.size / max(timer.seconds["embed"], 1e-9), 3)
    obs_out = obs.iloc[rows]
    with timer.stage("classify"):
        scores = classify(embeddings, obs_out[label_key] if label_key else None, settings.classifier, source.name,
                          label_key)
    uns = {"helical_runner": {"run_id": run_id, "model": str(loaded.folder), "test_model": loaded.test_model,
                              "source": str(path)}}
    # Readers see the dataset folder only once it holds everything (embeddings, then metrics.json).
    try:
        with staged_dataset(run_dir, source.name) as folder:
            with timer.stage("write"):
                write_embeddings(folder, obs_out, embeddings, uns)
            metrics = {
                "run_id": run_id, "dataset": source.name, "source": str(path), "demo_data": source.is_demo,
                "status": "ok", "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "cells": int(rows.size), "cells_in_file": n_cells, "cells_without_vocab_genes": int((~embedded).sum()),
                "max_cells": settings.max_cells, "genes": n_genes, "genes_in_vocabulary": mapping.n_in_vocab,
                "vocabulary_overlap": round(mapping.overlap, 4), "gene_key": mapping.gene_key,
                "matrix": {"source": matrix.path, "raw_counts": matrix.raw_counts},
                "label_key": label_key, "embedding_key": "X_scgpt", "embedding_dim": int(embeddings.shape[1]),
                "device": embedder.device.type, "precision": embedder.precision, "batch_size": settings.batch_size,
                "encoder": embedder.encoder.name, "embed_timing": timing, "cells_per_second": cells_per_second,
                "model": loaded.describe(), "test_model": loaded.test_model,
                "classifier": scores, "versions": package_versions(),
                "durations_seconds": {**timer.seconds, "total": round(time.perf_counter() - started, 4)},
                # The container's, the same for every dataset it ran (a pack): seconds per stage from its start.
                "startup": clock.report() if clock is not None else {},
                "datasets_in_container": datasets_in_container,
            }
            write_metrics(folder, metrics)
    except AlreadyPublished:
        return kept_result(run_dir, source, published_metrics(run_dir, source.name) or {})
    startup = clock.report().get("to_first_batch") if first_in_container and clock is not None else None
    return Result(source.name, "ok", str(run_dir / source.name), None, int(rows.size), cells_per_second,
                  dict(timer.seconds), time.perf_counter() - started, scores, startup)


def kept_result(run_dir: Path, source: DatasetSource, metrics: dict[str, Any]) -> Result:
    """The dataset's output published earlier in this run (a retry, or an orphaned try that finished first)."""
    if metrics.get("source") != str(source.path):
        raise DatasetError(f"{source.path}: run folder {run_dir} already holds dataset '{source.name}' from "
                           f"{metrics.get('source')}; two inputs share that name: rename one of them")
    remove_stale_staging(run_dir, source.name)
    LOG.info("dataset %s: already published in %s by an earlier try; kept, not recomputed", source.name, run_dir)
    return Result(source.name, "ok", str(run_dir / source.name), None, metrics.get("cells"),
                  metrics.get("cells_per_second"), classifier=metrics.get("classifier") or {}, reused=True)
