"""Report building of scripts/loadtest: files, Markdown numbers, re-rendering, worker comparison."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loadtest import rebuild_report, report, scaling
from loadtest.driver import build_report

FIXTURE = Path(__file__).parent / "fixtures" / "loadtest_records.json"
META = {"url": "http://localhost:8080", "dag_id": "helical_model_workflow",
        "run_id_prefix": "loadtest__20250603T100000Z__", "conf_example": {"device": "cpu"},
        "config": {"concurrency": 3, "rate": None, "runner_task": "run_runner_"}, "notes": [],
        # What Flower's node names said: one worker on the core, the other on a worker host.
        "worker_hosts": {"b81e06c5d2f4": "core", "3f9c2a7d41be": "gpubox"}}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict]:
    records = json.loads(FIXTURE.read_text())
    rep = build_report(records, json.loads(json.dumps(META)))
    return report.write_report(tmp_path / "out", rep, records), rep


def test_every_report_file_is_written(built: tuple[Path, dict]) -> None:
    path, _ = built
    for name in ("report.json", "report.md", "records.json", *report.PLOTS):
        assert (path.parent / name).stat().st_size > 0, name
    for plot in report.PLOTS:
        assert (path.parent / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_report_round_trips(built: tuple[Path, dict]) -> None:
    path, rep = built
    assert json.loads(path.read_text())["summary"]["runs"]["succeeded"] == 5
    assert rep["summary"]["throughput"]["cells_total"] == 1150


def test_markdown_shows_the_numbers(built: tuple[Path, dict]) -> None:
    md = (built[0].parent / "report.md").read_text()
    assert "**5 succeeded**" in md
    assert "| 111.0 | 2.70 |" in md  # window and runs/min
    assert "| queued → running (queue wait) | 7 | 25.00 | 35.30 | 35.60 |" in md
    assert "| b81e06c5d2f4 | core | cpu | 4 | 95.0 | 1 |" in md
    assert "| core | 1 | 4 | 95.0 | 1 |" in md  # the Hosts table
    assert "AirflowFailException: helical-runner rejected /data/broken.h5ad" in md


def test_absent_cells_are_reported_not_invented(tmp_path: Path) -> None:
    records = json.loads(FIXTURE.read_text())
    for rec in records:
        rec["runner_summaries"] = {}
    rep = build_report(records, json.loads(json.dumps(META)))
    assert rep["summary"]["throughput"]["cells_per_s"] is None
    assert any(n.startswith("cells/s absent") for n in rep["meta"]["notes"])
    report.write_report(tmp_path, rep, records)
    assert "| 111.0 | 2.70 | 3.24 | – | – |" in (tmp_path / "report.md").read_text()


def test_report_rebuilds_from_records_alone(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "records.json")
    out = rebuild_report(tmp_path / "records.json")
    assert json.loads((out / "report.json").read_text())["summary"]["runs"]["requested"] == 6


def test_comparison_ratio_is_last_over_first(built: tuple[Path, dict]) -> None:
    _, rep = built
    faster = json.loads(json.dumps(rep))
    faster["summary"]["throughput"]["runs_per_min"] *= 2.5
    comp = scaling.comparison([(1, rep), (3, faster)])
    assert comp["scaling_ratio"] == pytest.approx(2.5)
    assert comp["ideal_ratio"] == 3.0
    assert [r["workers"] for r in comp["rows"]] == [1, 3]
    assert "**2.50**" in scaling.render_comparison(comp)
