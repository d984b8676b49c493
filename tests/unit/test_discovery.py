"""Which datasets a run picks up from ./data, and run ids made safe for paths."""

import pytest

from helical_workflow.discovery import (
    DataPatternError,
    discover_datasets,
    pack_datasets,
    plan_datasets,
    planned_of,
    safe_run_id,
)


@pytest.fixture
def data_dir(tmp_path):
    for rel in ("a.h5ad", "b.h5ad", "notes.txt", "lab1/c.h5ad", "lab1/deep/d.h5ad"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    return tmp_path


def test_empty_pattern_takes_every_h5ad(data_dir):
    assert discover_datasets(data_dir, "") == [
        "/data/a.h5ad", "/data/b.h5ad", "/data/lab1/c.h5ad", "/data/lab1/deep/d.h5ad"
    ]


def test_empty_folder_runs_the_demo(tmp_path):
    assert discover_datasets(tmp_path, "") == ["/data"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("a.h5ad", ["/data/a.h5ad"]),
        ("/data/a.h5ad", ["/data/a.h5ad"]),
        ("*.h5ad", ["/data/a.h5ad", "/data/b.h5ad"]),
        ("lab1", ["/data/lab1/c.h5ad", "/data/lab1/deep/d.h5ad"]),
        ("lab1/**/*.h5ad", ["/data/lab1/c.h5ad", "/data/lab1/deep/d.h5ad"]),
    ],
)
def test_patterns(data_dir, pattern, expected):
    assert discover_datasets(data_dir, pattern) == expected


def test_pattern_matching_nothing_names_the_fix(data_dir):
    with pytest.raises(DataPatternError, match=r"matches no \.h5ad file under ./data \(4 present\)"):
        discover_datasets(data_dir, "missing*.h5ad")


def test_pattern_cannot_leave_the_data_folder(data_dir):
    with pytest.raises(DataPatternError, match="leaves the data folder"):
        discover_datasets(data_dir, "../etc/*.h5ad")


def test_every_dataset_of_a_run_gets_its_own_output_name():
    planned = plan_datasets(["/data/a/x.h5ad", "/data/a__x.h5ad", "/data/b/x.h5ad", "/data/top.h5ad",
                             "/data/lab1/deep/d.h5ad"])
    assert [p["dataset_name"] for p in planned] == ["a__x", "a__x-2", "b__x", "top", "lab1__deep__d"]
    assert [p["dataset"] for p in planned][:2] == ["/data/a/x.h5ad", "/data/a__x.h5ad"]
    assert plan_datasets(["/data"]) == [{"dataset": "/data", "dataset_name": None}]  # the demo names itself


def test_packs_are_even_and_keep_every_dataset_in_order():
    planned = plan_datasets([f"/data/d{i:02}.h5ad" for i in range(11)])
    sizes = {per_task: [len(p["datasets"]) for p in pack_datasets(planned, per_task)] for per_task in (1, 4, 10, 50)}
    assert sizes == {1: [1] * 11, 4: [3, 4, 4], 10: [5, 6], 50: [11]}
    for per_task in (1, 4, 10, 50):
        assert planned_of(pack_datasets(planned, per_task)) == planned
    assert pack_datasets([], 5) == []
    with pytest.raises(ValueError, match=">= 1"):
        pack_datasets(planned, 0)


def test_safe_run_id():
    assert safe_run_id("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00_00_00_00_00"
    assert safe_run_id("loadtest__1__2") == "loadtest__1__2"
