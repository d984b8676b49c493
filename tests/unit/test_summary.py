"""summary.json from the runners' metrics.json files."""

import json

from helical_workflow.discovery import plan_datasets
from helical_workflow.summary import (
    build_summary,
    collect_failures,
    collect_metrics,
    discovery_failed_summary,
    write_json_atomically,
)


def _planned(*paths: str) -> list[dict]:
    return plan_datasets(list(paths))


def _metrics(dataset: str, source: str, cells: int, embed_s: float, demo: bool = False) -> dict:
    return {"dataset": dataset, "source": source, "cells": cells, "demo_data": demo,
            "durations_seconds": {"embed": embed_s, "total": embed_s + 1}}


def test_summary_totals_and_missing_datasets(tmp_path):
    for m in (_metrics("a", "/data/a.h5ad", 100, 2.0), _metrics("b", "/data/b.h5ad", 300, 2.0)):
        write_json_atomically(tmp_path / m["dataset"] / "metrics.json", m)
    summary = build_summary("run_1", _planned("/data/a.h5ad", "/data/b.h5ad", "/data/c.h5ad"),
                            collect_metrics(tmp_path))
    assert summary["datasets_done"] == 2 and summary["datasets_planned"] == 3
    assert summary["missing"] == ["/data/c.h5ad"]
    assert summary["cells"] == 400 and summary["cells_per_second"] == 100.0


def test_demo_run_of_an_empty_folder_is_not_missing(tmp_path):
    demo = _metrics("pbmc68k_reduced", "/site-packages/scanpy/datasets/pbmc.h5ad", 700, 7.0, demo=True)
    assert build_summary("r", _planned("/data"), [demo])["missing"] == []
    assert build_summary("r", _planned("/data"), [])["missing"] == ["/data"]


def test_write_json_atomically_leaves_no_temp_file(tmp_path):
    target = tmp_path / "run" / "summary.json"
    write_json_atomically(target, {"x": 1})
    write_json_atomically(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_staging_folders_are_not_outputs_and_failures_carry_the_runners_error(tmp_path):
    write_json_atomically(tmp_path / "a" / "metrics.json", _metrics("a", "/data/a.h5ad", 10, 1.0))
    write_json_atomically(tmp_path / ".b.0f3c.tmp" / "metrics.json", _metrics("b", "/data/lab/b.h5ad", 10, 1.0))
    write_json_atomically(tmp_path / "lab__b.failed.json",
                          {"dataset": "lab__b", "error": "disk full", "exit_class": "unexpected"})
    planned = _planned("/data/a.h5ad", "/data/lab/b.h5ad", "/data/c.h5ad")
    summary = build_summary("r", planned, collect_metrics(tmp_path), collect_failures(tmp_path))
    assert summary["datasets_done"] == 1 and summary["missing"] == ["/data/lab/b.h5ad", "/data/c.h5ad"]
    assert summary["errors"]["/data/lab/b.h5ad"] == {"error": "disk full", "exit_class": "unexpected"}
    assert summary["errors"]["/data/c.h5ad"]["exit_class"] == "unknown"


def test_a_run_whose_discovery_failed_still_gets_a_summary():
    summary = discovery_failed_summary("r")
    assert summary["datasets_planned"] == 0 and "discover_datasets failed" in summary["error"]
