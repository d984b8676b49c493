"""The real Helical code path on the tiny checkpoint, end to end through the CLI."""

from __future__ import annotations

import errno
import json
import shutil
import socket
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
from conftest import EMBSIZE

from helical_runner.write import staging_name


def read_outputs(folder: Path) -> tuple[ad.AnnData, dict]:
    return ad.read_h5ad(folder / "embeddings.h5ad"), json.loads((folder / "metrics.json").read_text())


def test_demo_data_when_folder_is_empty(run_cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, summary, log = run_cli("--data", str(empty), "--run-id", "demo")
    assert code == 0 and summary["ok"] is True and summary["run_id"] == "demo"
    (entry,) = summary["datasets"]
    assert entry["dataset"] == "pbmc68k_reduced" and entry["status"] == "ok" and entry["cells"] == 700
    embeddings, metrics = read_outputs(Path(entry["output_dir"]))
    original = sc.datasets.pbmc68k_reduced()
    assert embeddings.obsm["X_scgpt"].shape == (700, EMBSIZE)
    assert np.isfinite(embeddings.obsm["X_scgpt"]).all()
    assert list(embeddings.obs_names) == list(original.obs_names)  # one row per cell, same order
    assert list(embeddings.obs["bulk_labels"]) == list(original.obs["bulk_labels"])
    # pbmc68k_reduced's X is scaled (negative); the log-normalised .raw is used (Helical's use_raw_counts=False).
    assert metrics["matrix"] == {"source": "raw/X", "raw_counts": False}
    assert metrics["genes"] == 765 and metrics["genes_in_vocabulary"] == 705
    assert metrics["test_model"] is True and metrics["model"]["test_model"] is True
    assert "TEST MODEL" in log
    assert metrics["label_key"] == "bulk_labels"
    clf = metrics["classifier"]
    assert clf["status"] == "ok" and clf["evaluated_on"] == "held_out"
    assert 0 < clf["n_test"] < 700 and clf["n_train"] + clf["n_test"] <= 700
    assert sum(c["support"] for c in clf["per_class"].values()) == clf["n_test"]
    # Accuracy is the support-weighted mean of the per-class recalls: the scores describe one evaluation.
    weighted = sum(c["recall"] * c["support"] for c in clf["per_class"].values()) / clf["n_test"]
    assert clf["accuracy"] == pytest.approx(weighted)
    durations = metrics["durations_seconds"]
    stages = [durations[key] for key in ("load", "prepare", "embed", "classify", "write")]
    assert durations["embed"] > 0 and sum(stages) <= durations["total"] + 1e-3  # stages are parts of the total
    assert set(metrics["versions"]) >= {"helical", "torch", "scanpy"}
    assert metrics["device"] == "cpu" and metrics["cells_per_second"] > 0


def test_raw_counts_with_labels(run_cli, counts_file: Path) -> None:
    code, summary, _ = run_cli("--data", str(counts_file.parent), "--batch-size", "16", "--chunk-cells", "50")
    assert code == 0
    (entry,) = summary["datasets"]
    assert entry["dataset"] == "lab_counts" and entry["cells"] == 120
    embeddings, metrics = read_outputs(Path(entry["output_dir"]))
    assert embeddings.obsm["X_scgpt"].shape == (120, EMBSIZE)
    assert np.isfinite(embeddings.obsm["X_scgpt"]).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings.obsm["X_scgpt"], axis=1), 1.0, rtol=1e-4)
    assert metrics["matrix"]["raw_counts"] is True and metrics["matrix"]["source"] == "X"
    clf = metrics["classifier"]
    assert clf["status"] == "ok" and clf["n_test"] == 30 and clf["n_train"] == 90  # 25% held out, stratified
    assert set(clf["per_class"]) == {"B", "T", "NK"}
    assert all(c["support"] == 10 for c in clf["per_class"].values())


def test_embedding_is_independent_of_batching(run_cli, counts_file: Path, tmp_path: Path) -> None:
    """Padding is excluded from the mean, so batch size and chunking do not change a cell's embedding."""
    _, one, _ = run_cli("--data", str(counts_file), "--batch-size", "1", "--classifier", "off",
                        output=tmp_path / "a")
    _, many, _ = run_cli("--data", str(counts_file), "--batch-size", "32", "--chunk-cells", "37",
                         "--classifier", "off", output=tmp_path / "b")
    a, _ = read_outputs(Path(one["datasets"][0]["output_dir"]))
    b, _ = read_outputs(Path(many["datasets"][0]["output_dir"]))
    cosine = (a.obsm["X_scgpt"] * b.obsm["X_scgpt"]).sum(axis=1)
    assert cosine.min() > 0.9999


def test_max_cells_subsamples_stratified(run_cli, counts_file: Path) -> None:
    code, summary, _ = run_cli("--data", str(counts_file), "--max-cells", "30", "--classifier", "off")
    assert code == 0 and summary["datasets"][0]["cells"] == 30
    embeddings, metrics = read_outputs(Path(summary["datasets"][0]["output_dir"]))
    assert embeddings.obs["cell_type"].value_counts().to_dict() == {"B": 10, "NK": 10, "T": 10}
    assert metrics["cells_in_file"] == 120 and metrics["genes"] == 200  # genes are never dropped
    assert metrics["classifier"]["status"] == "skipped"


def test_log_normalised_counts_in_layer(run_cli, tmp_path: Path) -> None:
    from conftest import make_counts

    data = make_counts(n_cells=40, classes=("A", "B"))
    data.layers["counts"] = data.X.copy()
    # log1p(CP10k) by hand: scanpy's normalize_total would spend seconds compiling numba kernels.
    scale = sp.diags(1e4 / np.asarray(data.X.sum(axis=1)).ravel())
    data.X = (scale @ data.X).log1p().tocsr()
    path = tmp_path / "norm.h5ad"
    data.write_h5ad(path)
    code, summary, _ = run_cli("--data", str(path), "--classifier", "off")
    assert code == 0
    _, metrics = read_outputs(Path(summary["datasets"][0]["output_dir"]))
    assert metrics["matrix"]["source"] == "layers/counts" and metrics["matrix"]["raw_counts"] is True


def test_ensembl_index_with_symbol_column(run_cli, tmp_path: Path) -> None:
    from conftest import make_counts

    data = make_counts(n_cells=30, classes=())
    data.var["gene_symbols"] = list(data.var_names)
    data.var_names = [f"ENSG{i:011d}" for i in range(data.n_vars)]
    path = tmp_path / "ensembl_with_symbols.h5ad"
    data.write_h5ad(path)
    code, summary, _ = run_cli("--data", str(path))
    assert code == 0, summary
    _, metrics = read_outputs(Path(summary["datasets"][0]["output_dir"]))
    assert metrics["gene_key"] == "gene_symbols" and metrics["genes_in_vocabulary"] == 200
    assert metrics["classifier"] == {"status": "skipped", "reason": "no label column (set LABEL_KEY)"}


def test_runs_offline_with_every_socket_blocked(run_cli, counts_file: Path, no_network: list[str]) -> None:
    code, summary, _ = run_cli("--data", str(counts_file))
    assert code == 0 and summary["ok"] is True
    assert no_network == []  # not even attempted


def test_runs_never_share_a_folder(run_cli, counts_file: Path, tmp_path: Path) -> None:
    _, first, _ = run_cli("--data", str(counts_file), "--classifier", "off")
    _, second, _ = run_cli("--data", str(counts_file), "--classifier", "off")
    assert first["run_id"] != second["run_id"]
    assert first["datasets"][0]["output_dir"] != second["datasets"][0]["output_dir"]


def test_a_retry_of_the_same_run_keeps_the_published_output(run_cli, counts_file: Path, tmp_path: Path) -> None:
    args = ("--data", str(counts_file), "--run-id", "same", "--classifier", "off")
    run_cli(*args)
    run_dir = tmp_path / "results" / "same"
    published = (run_dir / "lab_counts" / "metrics.json").read_text()
    (run_dir / staging_name("lab_counts")).mkdir()  # left by a killed earlier try
    code, retry, log = run_cli(*args)
    assert code == 0 and retry["ok"] and retry["datasets"][0]["cells"] == 120
    assert "already published" in log
    assert (run_dir / "lab_counts" / "metrics.json").read_text() == published  # exactly once: not recomputed
    assert sorted(p.name for p in run_dir.iterdir()) == ["lab_counts"]  # the stale staging folder is gone
    assert sorted(p.name for p in (run_dir / "lab_counts").iterdir()) == ["embeddings.h5ad", "metrics.json"]


def test_two_inputs_of_one_name_never_overwrite_each_other(run_cli, counts_file: Path, tmp_path: Path) -> None:
    for lab in ("labA", "labB"):
        (tmp_path / lab).mkdir()
        shutil.copy(counts_file, tmp_path / lab / "x.h5ad")
    first, _, _ = run_cli("--data", str(tmp_path / "labA" / "x.h5ad"), "--run-id", "r", "--classifier", "off")
    code, summary, _ = run_cli("--data", str(tmp_path / "labB" / "x.h5ad"), "--run-id", "r", "--classifier", "off")
    assert (first, code) == (0, 1)  # bad input, not retried
    assert "two inputs share that name" in summary["datasets"][0]["error"]
    assert json.loads((tmp_path / "results" / "r" / "x" / "metrics.json").read_text())["source"].endswith("labA/x.h5ad")


def test_an_unexpected_failure_exits_3_and_names_the_fix(run_cli, counts_file: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("helical_runner.pipeline.write_embeddings", disk_full)
    code, summary, _ = run_cli("--data", str(counts_file), "--run-id", "full", "--classifier", "off")
    assert code == 3  # retried by the workflow, unlike bad input
    assert "filesystem is full" in summary["datasets"][0]["error"]
    run_dir = tmp_path / "results" / "full"
    assert [p.name for p in run_dir.iterdir()] == ["lab_counts.failed.json"]  # nothing half-published or staged
    assert json.loads((run_dir / "lab_counts.failed.json").read_text())["exit_class"] == "unexpected"


def test_statsd_metrics(run_cli, counts_file: Path) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.5)
    try:
        code, _, _ = run_cli("--data", str(counts_file), "--statsd-host", "127.0.0.1",
                             "--statsd-port", str(server.getsockname()[1]))
        assert code == 0
        packets = []
        while True:
            try:
                packets.append(server.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        server.close()
    names = {p.split(":")[0]: p for p in packets}
    base = "helical.runner.cpu.lab_counts."
    assert names[base + "cells"] == base + "cells:120|c"
    assert names[base + "test_model"] == base + "test_model:1|g"
    assert names[base + "duration"].endswith("|ms")
    for metric in ("cells_per_second", "classifier_accuracy", "classifier_macro_f1"):
        assert names[base + metric].endswith("|g")
    for stage in ("load", "prepare", "embed", "classify", "write"):
        assert (base + "stage." + stage) in names


def test_a_pack_publishes_fails_and_counts_each_dataset_on_its_own(run_cli, counts_file: Path, tmp_path: Path) -> None:
    """--data/--name pairs: one container, the outcomes of separate runs (the workflow's datasets_per_task)."""
    broken = tmp_path / "data" / "broken.h5ad"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    code, summary, _ = run_cli("--data", str(counts_file), "--name", "lab__a", "--data", str(broken), "--name",
                               "lab__broken", "--data", str(counts_file), "--name", "lab__a_again", "--run-id", "pack",
                               "--classifier", "off")
    assert code == 1  # one bad input: the others are still published
    assert [(d["dataset"], d["status"]) for d in summary["datasets"]] == [
        ("lab__a", "ok"), ("lab__broken", "failed"), ("lab__a_again", "ok")]
    assert "broken.h5ad" in summary["datasets"][1]["error"]
    run_dir = tmp_path / "results" / "pack"
    assert (run_dir / "lab__broken.failed.json").is_file()
    first, again = (json.loads((run_dir / name / "metrics.json").read_text()) for name in ("lab__a", "lab__a_again"))
    assert first["datasets_in_container"] == again["datasets_in_container"] == 3
    assert first["startup"] == again["startup"] and first["startup"]["to_first_batch"] > 0


def test_the_model_equals_the_one_helicals_scgpt_builds(model_dir: Path) -> None:
    """The runner builds the model from Helical's own pieces without `scGPT()`: same tensors, same settings."""
    import torch
    from helical.models.scgpt import scGPT, scGPTConfig

    from helical_runner.model import MODEL_FILE, load_model

    ours = load_model(model_dir, "cpu")
    config = scGPTConfig(device="cpu", **ours.dims.as_dict())
    config.config["model_path"] = model_dir / MODEL_FILE
    config.config["list_of_files_to_download"] = []
    theirs = scGPT(configurer=config)
    mine, helicals = ours.model.state_dict(), theirs.model.state_dict()
    assert mine.keys() == helicals.keys()
    assert [key for key in mine if not torch.equal(mine[key], helicals[key])] == []
    assert not ours.model.training
    assert {k: ours.config[k] for k in ("pad_token", "pad_value", "MAX_LENGTH")} == {
        k: theirs.config[k] for k in ("pad_token", "pad_value", "MAX_LENGTH")}
