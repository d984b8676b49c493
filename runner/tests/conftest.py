"""Shared fixtures: one tiny test model per session, synthetic datasets, and an in-process CLI runner.

Fully offline. HELICAL_TEST_VOCAB may point at scGPT's real gene vocabulary
(../shared/scgpt-vocab/default_census_vocab.json); without it the built-in gene list is used.
Every synthetic gene comes from the built-in list, which is a subset of the real vocabulary,
so the tests pass either way.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import jsonschema
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helical_runner.cli import main
from helical_runner.config import RUN_OPTIONS
from helical_runner.model import TINY_DIMS
from helical_runner.test_model import builtin_genes, write_test_model

EMBSIZE = TINY_DIMS.embsize  # the test model's width


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = os.environ.get("HELICAL_TEST_VOCAB")
    return write_test_model(tmp_path_factory.mktemp("model"), Path(vocab) if vocab else None)


# The runner's output contracts: runner/schemas/ beside tests/ (in the image: /app/schemas beside /app/tests).
SCHEMAS = {name: json.loads((Path(__file__).resolve().parents[1] / "schemas" / f"{name}.schema.json").read_text())
           for name in ("summary", "metrics", "failure")}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner reads env vars; a developer's or the image's settings must not leak into tests.
    for _flag, name, _default, _help in RUN_OPTIONS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEVICE", "cpu")


def make_counts(n_cells: int = 120, n_genes: int = 200, classes: tuple[str, ...] = ("B", "T", "NK"),
                seed: int = 0) -> ad.AnnData:
    """Raw integer counts whose expression depends on the class, with symbols from the built-in vocab."""
    rng = np.random.default_rng(seed)
    genes = builtin_genes()[:n_genes]
    labels = np.array([classes[i % len(classes)] for i in range(n_cells)]) if classes else None
    rates = rng.gamma(0.3, 2.0, size=(max(len(classes), 1), n_genes))
    codes = np.array([classes.index(x) for x in labels]) if classes else np.zeros(n_cells, dtype=int)
    counts = rng.poisson(rates[codes]).astype(np.float32)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    if classes:
        obs["cell_type"] = pd.Categorical(labels)
    obs["n_counts"] = counts.sum(axis=1)
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture
def counts_file(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "lab_counts.h5ad"
    make_counts().write_h5ad(path)
    return path


Run = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], model_dir: Path, tmp_path: Path) -> Run:
    """Run `helical-runner` in-process (Helical is imported once per session); returns (exit code, summary, log).

    Every call checks what the runner wrote against its published schemas (runner/schemas/, docs/contracts.md):
    the summary line, each published metrics.json and each <dataset>.failed.json of the run.
    """

    def run(*args: str, model: Path | None = None, output: Path | None = None) -> tuple[int, dict[str, Any], str]:
        results = output or tmp_path / "results"
        argv = ["--model-dir", str(model or model_dir), "--output-dir", str(results), *args]
        code = main(argv)
        captured = capsys.readouterr()
        lines = [line for line in captured.out.splitlines() if line.strip()]
        summary = json.loads(lines[-1])  # contract: the last stdout line is the JSON summary
        jsonschema.validate(summary, SCHEMAS["summary"])
        for entry in summary["datasets"]:
            if entry["status"] == "ok":
                jsonschema.validate(json.loads((Path(entry["output_dir"]) / "metrics.json").read_text()),
                                    SCHEMAS["metrics"])
        for failure in (results / summary["run_id"]).glob("*.failed.json"):
            jsonschema.validate(json.loads(failure.read_text()), SCHEMAS["failure"])
        return code, summary, captured.err

    return run


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every outgoing connection and DNS lookup raises; returns the attempts made."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts
