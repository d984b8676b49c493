"""Small pieces on their own: settings, subsampling, discovery, names, atomic writes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helical_runner.config import add_run_arguments, settings_from
from helical_runner.discover import find_all_datasets, find_datasets, metric_name
from helical_runner.errors import ConfigError
from helical_runner.startup import StartupClock, process_age
from helical_runner.subsample import choose_cells
from helical_runner.write import AlreadyPublished, create_run_dir, ensure_writable, staged_dataset, write_atomically


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(argv)


def test_settings_defaults_env_and_flags() -> None:
    defaults = settings_from(parse(), {})
    paths = (defaults.data, defaults.names, defaults.output_dir, defaults.model_dir)
    assert paths == ((Path("/data"),), (None,), Path("/results"), Path("/models"))
    assert (defaults.device, defaults.max_cells, defaults.classifier, defaults.statsd_port) == ("auto", 0, "auto", 9125)
    assert defaults.statsd_host is None and defaults.run_id
    env = settings_from(parse(), {"MAX_CELLS": "50", "DEVICE": "CPU", "RUN_ID": "r"})
    assert (env.max_cells, env.device, env.run_id) == (50, "cpu", "r")
    flag = settings_from(parse("--max-cells", "7"), {"MAX_CELLS": "50"})
    assert flag.max_cells == 7  # a flag beats the env var
    with pytest.raises(ConfigError, match="MAX_CELLS='x' is not an integer"):
        settings_from(parse(), {"MAX_CELLS": "x"})
    with pytest.raises(ConfigError, match="CLASSIFIER"):
        settings_from(parse("--classifier", "maybe"), {})
    assert settings_from(parse("--name", "lab1__x"), {}).names == ("lab1__x",)
    assert settings_from(parse(), {"DATA_DIR": "/data/a.h5ad", "DATASET_NAME": "a"}).names == ("a",)
    for bad in ("a/x", ".hidden"):
        with pytest.raises(ConfigError, match="plain folder name"):
            settings_from(parse(), {"DATASET_NAME": bad})


def test_a_pack_pairs_each_data_with_its_name(tmp_path: Path) -> None:
    pack = settings_from(parse("--data", "/data/a.h5ad", "--name", "a", "--data", "/data/b/a.h5ad", "--name", "b__a"),
                         {"DATA_DIR": "/elsewhere"})
    assert (pack.data, pack.names) == ((Path("/data/a.h5ad"), Path("/data/b/a.h5ad")), ("a", "b__a"))
    unnamed = settings_from(parse("--data", "/data/a.h5ad", "--data", "/data/c.h5ad"), {})
    assert unnamed.names == (None, None)
    with pytest.raises(ConfigError, match="1 --name for 2 --data"):
        settings_from(parse("--data", "/x.h5ad", "--data", "/y.h5ad", "--name", "x"), {})
    with pytest.raises(ConfigError, match="repeat"):
        settings_from(parse("--data", "/x.h5ad", "--name", "x", "--data", "/y.h5ad", "--name", "x"), {})
    for path in ("a/x.h5ad", "b/x.h5ad"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("")
    named = find_all_datasets((tmp_path / "a/x.h5ad", tmp_path / "b/x.h5ad"), ("a__x", "b__x"))
    assert [(s.name, s.path) for s in named] == [("a__x", tmp_path / "a/x.h5ad"), ("b__x", tmp_path / "b/x.h5ad")]
    with pytest.raises(ConfigError, match="would both be published as 'x'"):
        find_all_datasets((tmp_path / "a/x.h5ad", tmp_path / "b/x.h5ad"), (None, None))


def test_startup_clock_counts_from_the_process_start() -> None:
    clock = StartupClock()
    assert 0 < process_age() < 600  # this test process started within the test session
    assert clock.report() == {}
    for stage in ("python", "imports", "model"):
        clock.mark(stage)
    partial = clock.report()
    assert list(partial) == ["python", "imports", "model"] and partial["python"] > 0
    clock.mark("first_batch")
    first = clock.report()
    clock.mark("first_batch")  # a pack's later datasets do not move it
    assert clock.report() == first
    assert first["to_first_batch"] == pytest.approx(sum(first[s] for s in ("python", "imports", "model",
                                                                          "first_batch")), abs=0.005)
    with pytest.raises(ValueError, match="unknown"):
        clock.mark("later")


def test_subsample_is_seeded_and_stratified() -> None:
    labels = pd.Series(["a"] * 900 + ["b"] * 90 + ["c"] * 10)
    picked = choose_cells(1000, 100, labels)
    assert picked.size == 100 and np.all(np.diff(picked) > 0)
    assert labels.iloc[picked].value_counts().to_dict() == {"a": 90, "b": 9, "c": 1}
    assert np.array_equal(picked, choose_cells(1000, 100, labels))  # seeded
    rare = choose_cells(1000, 5, pd.Series(["a"] * 997 + ["b", "c", "d"]))
    assert set(pd.Series(["a"] * 997 + ["b", "c", "d"]).iloc[rare]) == {"a", "b", "c", "d"}
    assert choose_cells(10, 0).size == 10 and choose_cells(10, 50).size == 10
    assert choose_cells(1000, 10).size == 10


def test_discover(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for path in ("a/x.h5ad", "b/x.h5ad", ".hidden/y.h5ad", "a/notes.txt"):
        (tmp_path / path).write_text("")
    assert [s.name for s in find_datasets(tmp_path)] == ["x", "x-2"]
    demo = find_datasets(tmp_path / "a" / "notes.txt")
    assert demo[0].name == "notes"
    # The workflow names each file of a run uniquely (a/x and b/x would both be "x" by stem).
    assert [s.name for s in find_datasets(tmp_path / "b" / "x.h5ad", "b__x")] == ["b__x"]
    with pytest.raises(ConfigError, match="names one dataset"):
        find_datasets(tmp_path / "a", "a__x")
    with pytest.raises(ConfigError, match="does not exist"):
        find_datasets(tmp_path / "missing")
    (empty := tmp_path / "empty").mkdir()
    (source,) = find_datasets(empty)
    assert source.is_demo and source.name == "pbmc68k_reduced" and source.path.is_file()


def test_metric_names() -> None:
    assert metric_name("PBMC 3k-v2.final") == "pbmc_3k_v2_final"


def test_run_dir_and_atomic_write(tmp_path: Path) -> None:
    # The datasets of one run (one container each in the workflow) share its folder.
    assert create_run_dir(tmp_path, "r") == create_run_dir(tmp_path, "r") == tmp_path / "r"
    target = tmp_path / "f.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        write_atomically(target, lambda p: (p.write_text("half"), (_ for _ in ()).throw(RuntimeError()))[0])
    assert target.read_text() == "old" and list(tmp_path.glob(".*tmp")) == []


def test_a_failed_dataset_leaves_no_staging_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_dataset(tmp_path, "d") as folder:
        (folder / "embeddings.h5ad").write_text("half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_never_replaces_a_published_dataset(tmp_path: Path) -> None:
    # An orphaned try and its retry stage the same dataset at once: unique staging names, one winner.
    with pytest.raises(AlreadyPublished), staged_dataset(tmp_path, "d") as late:
        with staged_dataset(tmp_path, "d") as early:
            assert early != late
            (early / "metrics.json").write_text("early")
        (late / "metrics.json").write_text("late")
    assert (tmp_path / "d" / "metrics.json").read_text() == "early"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_a_results_folder_that_refuses_writes_fails_before_embedding(tmp_path: Path, monkeypatch) -> None:
    """A broken mount of the shared filesystem (read-only here) is this host's fault: an OSError, retried."""
    import errno

    ensure_writable(tmp_path)  # writable: the probe file is written and removed
    assert list(tmp_path.iterdir()) == []

    def read_only(self: Path, data: bytes) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(OSError, match=r"cannot write a file in OUTPUT_DIR .*Read-only file system.*shared filesystem"):
        ensure_writable(tmp_path)
