"""A published dataset's metrics.json, built in one place from what the pipeline measured
(runner/schemas/metrics.schema.json is its shape; docs/contracts.md says what the workflow reads)."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from helical_runner import __version__
from helical_runner.load import MatrixChoice
from helical_runner.validate import GeneMapping


@dataclass(frozen=True)
class EmbeddedDataset:
    """What loading, preparing and embedding one dataset found: the facts its metrics report."""

    path: Path
    cells_in_file: int
    genes: int
    matrix: MatrixChoice
    mapping: GeneMapping
    label_key: str | None
    cells: int  # embedded (cells expressing no vocabulary gene are left out)
    cells_without_vocab_genes: int
    embedding_dim: int
    cells_per_second: float
    embed_timing: dict[str, Any]


@functools.cache  # once per container: a pack's datasets would each read the same package metadata
def package_versions() -> dict[str, str]:
    found = {"helical_runner": __version__, "python": platform.python_version()}
    for package in ("helical", "torch", "scanpy", "anndata", "scikit-learn", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def metrics_record(*, run_id: str, dataset: str, demo_data: bool, data: EmbeddedDataset, max_cells: int,
                   batch_size: int, device: str, precision: str, encoder: str, model: dict[str, Any],
                   test_model: bool, classifier: dict[str, Any], durations: dict[str, float],
                   startup: dict[str, float], datasets_in_container: int) -> dict[str, Any]:
    return {
        "run_id": run_id, "dataset": dataset, "source": str(data.path), "demo_data": demo_data,
        "status": "ok", "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cells": data.cells, "cells_in_file": data.cells_in_file, "cells_without_vocab_genes":
            data.cells_without_vocab_genes,
        "max_cells": max_cells, "genes": data.genes, "genes_in_vocabulary": data.mapping.n_in_vocab,
        "vocabulary_overlap": round(data.mapping.overlap, 4), "gene_key": data.mapping.gene_key,
        "matrix": {"source": data.matrix.path, "raw_counts": data.matrix.raw_counts},
        "label_key": data.label_key, "embedding_key": "X_scgpt", "embedding_dim": data.embedding_dim,
        "device": device, "precision": precision, "batch_size": batch_size, "encoder": encoder,
        "embed_timing": data.embed_timing, "cells_per_second": data.cells_per_second, "model": model,
        "test_model": test_model, "classifier": classifier, "versions": package_versions(),
        "durations_seconds": durations,
        # The container's, the same for every dataset it ran (a pack): seconds per stage from its start.
        "startup": startup,
        "datasets_in_container": datasets_in_container,
    }
