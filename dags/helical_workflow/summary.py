"""The run's summary.json, built from each dataset's metrics.json that the runners wrote."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from helical_workflow.discovery import RUNNER_DATA_DIR


def collect_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every dataset's metrics.json under results/<run_id>/, sorted by dataset folder."""
    found = []
    for path in sorted(run_dir.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        metrics.setdefault("dataset", path.parent.name)
        found.append(metrics)
    return found


def build_summary(run_id: str, planned: list[str], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the datasets, and which planned inputs left no metrics.json behind (failed runners)."""
    done_sources = {m.get("source") for m in metrics}
    ran_demo = any(m.get("demo_data") for m in metrics)
    # An empty data folder is planned as the folder itself; the runner then embeds its demo dataset.
    missing = [p for p in planned if p not in done_sources and not (p == str(RUNNER_DATA_DIR) and ran_demo)]
    cells = sum(int(m.get("cells") or 0) for m in metrics)
    embed_seconds = sum(float((m.get("durations_seconds") or {}).get("embed") or 0.0) for m in metrics)
    return {
        "run_id": run_id,
        "datasets_planned": len(planned),
        "datasets_done": len(metrics),
        "missing": missing,
        "cells": cells,
        "cells_per_second": round(cells / embed_seconds, 2) if embed_seconds else None,
        "datasets": metrics,
    }


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
