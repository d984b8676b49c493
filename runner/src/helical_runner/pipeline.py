"""One dataset through the verbs: load -> prepare -> embed -> classify -> write, and its outcome: a published
output, a kept earlier one, or a failure recorded for the run's summary (never an exception)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helical_runner.classify import classify
from helical_runner.config import Settings
from helical_runner.discover import DatasetSource
from helical_runner.embed import Embedder
from helical_runner.errors import DatasetError, unexpected
from helical_runner.load import H5adReader
from helical_runner.metrics import Metrics
from helical_runner.model import LoadedModel
from helical_runner.record import EmbeddedDataset, metrics_record
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


@dataclass(frozen=True)
class ContainerRun:
    """What every dataset of one container shares: its settings, run folder and id, the loaded model and
    embedder, StatsD, and how many datasets the container runs (its pack)."""

    settings: Settings
    run_dir: Path
    run_id: str
    loaded: LoadedModel
    embedder: Embedder
    metrics: Metrics
    datasets_in_container: int


def run_dataset(source: DatasetSource, run: ContainerRun) -> Result:
    """The dataset's outcome, logged and counted; a failure is recorded in <dataset>.failed.json, so one bad
    dataset never stops the others."""
    started = time.perf_counter()
    LOG.info("dataset %s: %s", source.name, source.path)
    try:
        result = process_dataset(source, run)
    except DatasetError as exc:
        result = Result.failed(source.name, str(exc))
    except Exception as exc:
        LOG.exception("dataset %s: unexpected error", source.name)
        result = Result.failed(source.name, unexpected(source.path, exc), retryable=True)
    test_model = run.loaded.test_model
    if result.status == "failed":
        LOG.error("dataset %s FAILED: %s", source.name, result.error)
        record_failure(run.run_dir, source.name, str(result.error), result.retryable)
        run.metrics.dataset_failed(source.name, time.perf_counter() - started, test_model)
    elif not result.reused:
        run.metrics.dataset_ok(source.name, result.stage_seconds, result.total_seconds, result.cells or 0,
                               result.cells_per_second or 0.0, test_model, result.classifier, result.startup_seconds)
        LOG.info("dataset %s: ok, %d cells, %.1f cells/s, outputs in %s%s", source.name, result.cells,
                 result.cells_per_second, result.output_dir, " (TEST MODEL)" if test_model else "")
    return result


def process_dataset(source: DatasetSource, run: ContainerRun) -> Result:
    """load -> prepare -> embed -> classify -> write. Raises DatasetError (or anything unexpected) on failure;
    run_dataset records it."""
    if (earlier := published_metrics(run.run_dir, source.name)) is not None:
        return kept_result(run.run_dir, source, earlier)
    remove_stale_staging(run.run_dir, source.name)
    started = time.perf_counter()
    timer = Stages()
    clock = run.embedder.clock
    first_in_container = clock is not None and "first_batch" not in clock.marks
    data, obs_out, embeddings = embed_dataset(source, run, timer)
    with timer.stage("classify"):
        scores = classify(embeddings, obs_out[data.label_key] if data.label_key else None, run.settings.classifier,
                          source.name, data.label_key)
    uns = {"helical_runner": {"run_id": run.run_id, "model": str(run.loaded.folder), "test_model":
                              run.loaded.test_model, "source": str(data.path)}}
    # Readers see the dataset folder only once it holds everything (embeddings, then metrics.json).
    try:
        with staged_dataset(run.run_dir, source.name) as folder:
            with timer.stage("write"):
                write_embeddings(folder, obs_out, embeddings, uns)
            write_metrics(folder, metrics_record(
                run_id=run.run_id, dataset=source.name, demo_data=source.is_demo, data=data,
                max_cells=run.settings.max_cells, batch_size=run.settings.batch_size,
                device=run.embedder.device.type, precision=run.embedder.precision,
                encoder=run.embedder.encoder.name, model=run.loaded.describe(), test_model=run.loaded.test_model,
                classifier=scores, durations={**timer.seconds, "total": round(time.perf_counter() - started, 4)},
                startup=clock.report() if clock is not None else {}, datasets_in_container=run.datasets_in_container))
    except AlreadyPublished:
        return kept_result(run.run_dir, source, published_metrics(run.run_dir, source.name) or {})
    startup = clock.report().get("to_first_batch") if first_in_container and clock is not None else None
    return Result(source.name, "ok", str(run.run_dir / source.name), None, data.cells, data.cells_per_second,
                  dict(timer.seconds), time.perf_counter() - started, scores, startup)


def embed_dataset(source: DatasetSource, run: ContainerRun, timer: Stages
                  ) -> tuple[EmbeddedDataset, pd.DataFrame, np.ndarray]:
    """load -> prepare -> embed: the dataset's facts, the obs rows of the embedded cells, their embeddings."""
    path, settings, embedder = source.path, run.settings, run.embedder
    with H5adReader(path) as reader:
        with timer.stage("load"):
            matrix = reader.choose_matrix()
            n_cells, n_genes = reader.shape_of(matrix.path)
            check_shape(path, n_cells, n_genes)
            obs = reader.obs()
            var = reader.var()
        with timer.stage("prepare"):
            mapping = map_genes(path, var, run.loaded.vocab, settings.gene_key)
            label_key = find_label_key(path, obs, settings.label_key, settings.classifier)
            rows = choose_cells(n_cells, settings.max_cells, obs[label_key] if label_key else None)
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
    data = EmbeddedDataset(path=path, cells_in_file=n_cells, genes=n_genes, matrix=matrix, mapping=mapping,
                           label_key=label_key, cells=int(rows.size), cells_without_vocab_genes=int((~embedded).sum()),
                           embedding_dim=int(embeddings.shape[1]),
                           cells_per_second=round(rows.size / max(timer.seconds["embed"], 1e-9), 3),
                           embed_timing=timing)
    return data, obs.iloc[rows], embeddings


def kept_result(run_dir: Path, source: DatasetSource, metrics: dict[str, Any]) -> Result:
    """The dataset's output published earlier in this run (a retry, or an orphaned try that finished first)."""
    if metrics.get("source") != str(source.path):
        raise DatasetError(f"{source.path}: run folder {run_dir} already holds dataset '{source.name}' from "
                           f"{metrics.get('source')}; two inputs share that name: rename one of them")
    remove_stale_staging(run_dir, source.name)
    LOG.info("dataset %s: already published in %s by an earlier try; kept, not recomputed", source.name, run_dir)
    return Result(source.name, "ok", str(run_dir / source.name), None, metrics.get("cells"),
                  metrics.get("cells_per_second"), classifier=metrics.get("classifier") or {}, reused=True)
