"""Every bad input gives a non-zero exit and one line naming the file, the cause and the fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_counts


def single_error(summary: dict) -> str:
    (entry,) = summary["datasets"]
    assert entry["status"] == "failed" and entry["output_dir"] is None
    assert "\n" not in entry["error"]
    return entry["error"]


def test_missing_data_path(run_cli, tmp_path: Path) -> None:
    code, summary, log = run_cli("--data", str(tmp_path / "nope"))
    assert code == 2 and summary["ok"] is False and summary["datasets"] == []
    assert "does not exist" in log and "DATA_DIR" in log


def test_not_hdf5(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.h5ad"
    path.write_text("cell,gene\n1,2\n")
    code, summary, _ = run_cli("--data", str(path))
    error = single_error(summary)
    assert code == 1 and str(path) in error and "not an HDF5/h5ad file" in error and "write_h5ad" in error


@pytest.mark.parametrize(("shape", "expected"), [((0, 5), "has 0 cells"), ((5, 0), "has 0 genes")])
def test_zero_cells_or_genes(run_cli, tmp_path: Path, shape: tuple[int, int], expected: str) -> None:
    path = tmp_path / "empty.h5ad"
    genes = [f"G{i}" for i in range(shape[1])]
    ad.AnnData(X=np.zeros(shape, dtype=np.float32), var=pd.DataFrame(index=genes)).write_h5ad(path)
    code, summary, _ = run_cli("--data", str(path))
    assert code == 1 and expected in single_error(summary)


def run_with_genes(run_cli, tmp_path: Path, genes: list[str]) -> tuple[int, str]:
    """A small counts dataset whose genes carry the given names; returns (exit code, its one error)."""
    data = make_counts(n_cells=10, n_genes=len(genes), classes=())
    data.var_names = genes
    path = tmp_path / "genes.h5ad"
    data.write_h5ad(path)
    code, summary, _ = run_cli("--data", str(path))
    return code, single_error(summary)


def test_no_gene_overlap_reports_overlap(run_cli, tmp_path: Path) -> None:
    code, error = run_with_genes(run_cli, tmp_path, [f"NOTAGENE{i}" for i in range(20)])
    assert code == 1 and "0 of 20 genes" in error and "model vocabulary" in error and "GENE_KEY" in error


def test_ensembl_ids_without_symbols(run_cli, tmp_path: Path, no_network: list[str]) -> None:
    code, error = run_with_genes(run_cli, tmp_path, [f"ENSG{i:011d}.3" for i in range(20)])
    assert code == 1 and "Ensembl IDs" in error and "never looks them up over the network" in error
    assert no_network == []


def test_classifier_on_without_labels(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.h5ad"
    make_counts(n_cells=10, classes=()).write_h5ad(path)
    code, summary, _ = run_cli("--data", str(path), "--classifier", "on")
    error = single_error(summary)
    assert code == 1 and "CLASSIFIER=on but no label column" in error and "LABEL_KEY" in error


def test_scaled_data_without_raw(run_cli, tmp_path: Path) -> None:
    data = make_counts(n_cells=10, classes=())
    data.X = data.X.toarray() - 1.0  # scaled: negative values, no counts anywhere
    path = tmp_path / "scaled.h5ad"
    data.write_h5ad(path)
    code, summary, _ = run_cli("--data", str(path))
    assert code == 1 and "no usable expression values" in single_error(summary)


def test_one_corrupt_file_does_not_stop_the_others(run_cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_counts(n_cells=40).write_h5ad(data_dir / "a_good.h5ad")
    make_counts(n_cells=40).write_h5ad(tmp_path / "whole.h5ad")
    blob = (tmp_path / "whole.h5ad").read_bytes()
    (data_dir / "b_corrupt.h5ad").write_bytes(blob[: len(blob) // 3])  # truncated copy
    code, summary, _ = run_cli("--data", str(data_dir))
    assert code == 1 and summary["ok"] is False
    good, bad = summary["datasets"]
    assert good["dataset"] == "a_good" and good["status"] == "ok" and good["cells"] == 40
    assert bad["dataset"] == "b_corrupt" and bad["status"] == "failed" and "b_corrupt.h5ad" in bad["error"]
    folder = Path(good["output_dir"])
    assert ad.read_h5ad(folder / "embeddings.h5ad").obsm["X_scgpt"].shape[0] == 40
    assert json.loads((folder / "metrics.json").read_text())["status"] == "ok"
    assert not (folder.parent / "b_corrupt").exists()
    assert not list(folder.parent.rglob("*.tmp*"))  # no half-written files


def test_missing_model_files_offline(run_cli, counts_file: Path, tmp_path: Path, no_network: list[str]) -> None:
    code, summary, _ = run_cli("--data", str(counts_file), model=tmp_path / "no-models")
    assert code == 2 and summary["ok"] is False
    error = summary["datasets"][0]["error"]
    assert "best_model.pt" in error and "vocab.json" in error and "make models" in error


def mutated_model(model_dir: Path, tmp_path: Path, mutate) -> Path:
    folder = tmp_path / "bad-model"
    shutil.copytree(model_dir, folder)
    state = torch.load(folder / "best_model.pt", weights_only=True)
    mutate(state)
    torch.save(state, folder / "best_model.pt")
    return folder


def test_checkpoint_with_mismatched_tensor_is_rejected(run_cli, model_dir: Path, counts_file: Path,
                                                       tmp_path: Path) -> None:
    key = "transformer_encoder.layers.1.linear1.weight"

    def widen(state: dict) -> None:
        state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])

    code, summary, _ = run_cli("--data", str(counts_file), model=mutated_model(model_dir, tmp_path, widen))
    error = summary["datasets"][0]["error"]
    assert code == 2 and "does not match scGPT's architecture" in error and key in error


def test_checkpoint_with_missing_tensor_is_rejected(run_cli, model_dir: Path, counts_file: Path,
                                                    tmp_path: Path) -> None:
    def drop(state: dict) -> None:
        del state["encoder.enc_norm.weight"]

    code, summary, _ = run_cli("--data", str(counts_file), model=mutated_model(model_dir, tmp_path, drop))
    assert code == 2 and "missing encoder.enc_norm.weight" in summary["datasets"][0]["error"]


def test_fetch_model_offline_names_the_missing_files(tmp_path: Path, no_network: list[str], capsys) -> None:
    from helical_runner.cli import main

    assert main(["fetch-model", "--model-dir", str(tmp_path / "models")]) == 2
    assert "make models" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; the image runs these tests as a normal user")
def test_read_only_output_dir_names_the_fix(run_cli, counts_file: Path, tmp_path: Path) -> None:
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    code, summary, log = run_cli("--data", str(counts_file), output=read_only)
    assert code == 2 and summary["ok"] is False
    assert "is not writable" in log and "--user" in log
