"""An .h5ad that reads another file (HDF5 external links, external storage, virtual datasets) is refused whole,
before anything is read: runners write every run's outputs to /results, so such a file could embed or copy another
run's data. Built with h5py, as a hostile file would be."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_counts

CELLS, GENES = 120, 200
# Another run's output, as a hostile input would name it: /results/<run>/<dataset>/...
SECRET = np.full((CELLS, GENES), 7, dtype=np.float32)


@pytest.fixture
def other_run(tmp_path: Path) -> Path:
    folder = tmp_path / "results" / "someone_elses_run" / "lab"
    folder.mkdir(parents=True)
    with h5py.File(folder / "embeddings.h5ad", "w") as f:
        f["X"] = SECRET
    SECRET.tofile(folder / "raw.bin")
    return folder


def dense_counts(path: Path) -> Path:
    data = make_counts(CELLS, GENES)
    data.X = data.X.toarray()
    data.write_h5ad(path)
    return path


def external_link(f: h5py.File, name: str, other: Path) -> None:
    f[name] = h5py.ExternalLink(str(other / "embeddings.h5ad"), "/X")


def external_storage(f: h5py.File, name: str, other: Path) -> None:
    f.create_dataset(name, shape=SECRET.shape, dtype=SECRET.dtype, external=[(str(other / "raw.bin"), 0, SECRET.nbytes)])


def virtual_dataset(f: h5py.File, name: str, other: Path) -> None:
    layout = h5py.VirtualLayout(shape=SECRET.shape, dtype=SECRET.dtype)
    layout[:] = h5py.VirtualSource(str(other / "embeddings.h5ad"), "X", shape=SECRET.shape)
    f.create_virtual_dataset(name, layout)


KINDS: dict[str, Callable[[h5py.File, str, Path], None]] = {
    "external link": external_link, "external storage": external_storage, "virtual dataset": virtual_dataset}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("place", ["X", "uns/extra"], ids=["as the matrix", "anywhere else"])
def test_a_file_that_reads_another_file_is_refused(run_cli, tmp_path: Path, other_run: Path, kind: str,
                                                   place: str) -> None:
    path = dense_counts(tmp_path / "hostile.h5ad")
    with h5py.File(path, "r+") as f:
        if place == "X":
            del f["X"]
        KINDS[kind](f, place, other_run)
    code, summary, _ = run_cli("--data", str(path), "--run-id", "hostile")
    (entry,) = summary["datasets"]
    assert code == 1 and entry["status"] == "failed" and entry["output_dir"] is None  # bad input: never retried
    error = entry["error"]
    assert error.startswith(f"{path}: reads data from outside the file (/{place} ")
    assert str(other_run) in error and "write_h5ad" in error and "\n" not in error
    run_dir = tmp_path / "results" / "hostile"
    assert [p.name for p in run_dir.iterdir()] == ["hostile.failed.json"]  # nothing was embedded or written
    assert json.loads((run_dir / "hostile.failed.json").read_text())["exit_class"] == "bad_input"


def test_a_name_cannot_break_the_one_line_error(run_cli, tmp_path: Path, other_run: Path) -> None:
    path = dense_counts(tmp_path / "newline.h5ad")
    with h5py.File(path, "r+") as f:
        f["uns/extra"] = h5py.ExternalLink(f"{other_run}/x\nFAKE LOG LINE.h5", "/X")
    code, summary, _ = run_cli("--data", str(path))
    assert code == 1 and "\n" not in summary["datasets"][0]["error"] and "\\nFAKE LOG LINE" in summary["datasets"][0]["error"]


def test_links_inside_the_file_are_fine(run_cli, tmp_path: Path) -> None:
    path = dense_counts(tmp_path / "aliased.h5ad")
    with h5py.File(path, "r+") as f:
        f["uns/same_obs"] = h5py.SoftLink("/obs")
    code, summary, _ = run_cli("--data", str(path))
    assert code == 0 and summary["datasets"][0]["status"] == "ok", summary
