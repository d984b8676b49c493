"""Which datasets a run picks up from ./data, and run ids made safe for paths."""

import hashlib
import random
from pathlib import Path

import pytest

from helical_workflow.discovery import (
    HASHED_RUN_ID,
    SAFE_RUN_ID,
    DataPatternError,
    TooManyDatasetsError,
    describe_packing,
    discover_datasets,
    pack_datasets,
    plan_datasets,
    plan_packs,
    planned_of,
    run_folder,
    safe_run_id,
)
from loadtest.config import run_id_for, timestamp


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


def test_packs_grow_past_the_asked_size_only_to_stay_within_the_task_bound():
    planned = plan_datasets([f"/data/d{i:05}.h5ad" for i in range(10_000)])
    packs = plan_packs(planned, asked_per_task=1, max_runner_tasks=512, max_datasets=100_000)
    assert len(packs) == 500 and planned_of(packs) == planned  # 20 a pack: ceil(10,000 / 512)
    assert describe_packing(packs, 1, 512) == {"datasets": 10_000, "runner_tasks": 500, "datasets_per_task_asked": 1,
                                               "datasets_per_task": 20, "automatic": True, "max_runner_tasks": 512}
    few = plan_packs(planned[:1_100], asked_per_task=1, max_runner_tasks=1024, max_datasets=100_000)
    assert len(few) == 550 and describe_packing(few, 1, 1024)["datasets_per_task"] == 2
    asked = plan_packs(planned[:100], asked_per_task=10, max_runner_tasks=512, max_datasets=100_000)
    assert len(asked) == 10 and describe_packing(asked, 10, 512)["automatic"] is False


def test_more_datasets_than_a_run_takes_are_refused_naming_the_setting():
    planned = plan_datasets([f"/data/d{i}.h5ad" for i in range(11)])
    with pytest.raises(TooManyDatasetsError, match=r"11 datasets selected.*at most 10 \(MAX_DATASETS_PER_RUN"):
        plan_packs(planned, 1, 512, max_datasets=10)


def test_a_safe_run_id_is_its_own_folder():
    for run_id in ("loadtest__1__2", "make__20260101T000000", "e2e__lockdown__1767225600", run_id_for(timestamp(), 7),
                   "a..b", "x" * 128):
        assert safe_run_id(run_id) == run_id  # the load test, make trigger and the e2e find their runs' folders


def test_any_other_run_id_keeps_a_readable_part_and_its_whole_hash():
    run_id = "manual__2026-01-01T00:00:00+00:00"
    digest = hashlib.sha256(run_id.encode()).hexdigest()
    assert safe_run_id(run_id) == f"manual__2026-01-01T00_00_00_00_00--{digest}"
    assert safe_run_id("x" * 129) == f"{'x' * 59}--{hashlib.sha256(b'x' * 129).hexdigest()}"


@pytest.mark.parametrize("run_id", [".", "..", "", "/", "../x", "a/../../b", "-x", "--help", "_x", ".hidden", "é",
                                    "a\nb", "x" * 250, "\x00", "C:\\x"])
def test_no_run_id_leaves_the_results_folder_or_reads_as_an_option(run_id, tmp_path: Path):
    safe = safe_run_id(run_id)
    assert SAFE_RUN_ID.fullmatch(safe) and safe not in (".", "..") and len(safe) <= 128
    assert run_folder(tmp_path, run_id) == tmp_path / safe  # directly inside, never a hidden folder or an option


def test_two_run_ids_never_share_a_folder():
    rng = random.Random(20)
    alphabet = "aZ09_.-:+/ ~é\n"
    ids = {"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(20000)}
    ids |= {"manual__2026-01-01T00:00:00+00:00", "manual__2026-01-01T00_00_00_00_00", ".", "..", "r.", "r.."}
    # What an attacker would try: another id's folder name given as a run id, as it is and near it.
    hashed = {safe_run_id(i) for i in ids if not SAFE_RUN_ID.fullmatch(i)}
    ids |= hashed | {h.replace("--", "-_", 1) for h in hashed} | {h + "0" for h in hashed} | {h[1:] for h in hashed}
    folders = {safe_run_id(i) for i in ids}
    assert len(folders) == len(ids)
    assert all(SAFE_RUN_ID.fullmatch(f) for f in folders)
    assert all(safe_run_id(h) != h and HASHED_RUN_ID.fullmatch(safe_run_id(h)) for h in hashed)
