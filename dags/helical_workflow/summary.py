"""The run's summary.json, built from each dataset's metrics.json that the runners wrote."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from helical_workflow.contract import RUNNER_DATA_DIR
from helical_workflow.discovery import PlannedDataset


def collect_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every published dataset's metrics.json under results/<run_id>/ (staging folders are hidden), sorted."""
    found = []
    for path in sorted(run_dir.glob("*/metrics.json")):
        if path.parent.name.startswith("."):
            continue  # a runner still writing, or one that died: not an output
        metrics = json.loads(path.read_text())
        metrics.setdefault("dataset", path.parent.name)
        found.append(metrics)
    return found


def collect_failures(run_dir: Path) -> dict[str, dict[str, Any]]:
    """{dataset: {"error", "exit_class"}} from the runners' <dataset>.failed.json (docs/contracts.md)."""
    return {path.name.removesuffix(".failed.json"): json.loads(path.read_text())
            for path in sorted(run_dir.glob("*.failed.json"))}


def build_summary(run_id: str, planned: list[PlannedDataset], metrics: list[dict[str, Any]],
                  failures: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Totals over the datasets, and which planned inputs left no metrics.json behind, with the runner's error."""
    done_sources = {m.get("source") for m in metrics}
    ran_demo = any(m.get("demo_data") for m in metrics)
    names = {p["dataset"]: p["dataset_name"] for p in planned}
    # An empty data folder is planned as the folder itself; the runner then embeds its demo dataset.
    missing = [p for p in names if p not in done_sources and not (p == str(RUNNER_DATA_DIR) and ran_demo)]
    cells = sum(int(m.get("cells") or 0) for m in metrics)
    embed_seconds = sum(float((m.get("durations_seconds") or {}).get("embed") or 0.0) for m in metrics)
    return {
        "run_id": run_id,
        "datasets_planned": len(planned),
        "datasets_done": len(metrics),
        "missing": missing,
        "errors": {path: explain_missing(names[path] or Path(path).stem, failures or {}) for path in missing},
        "cells": cells,
        "cells_per_second": round(cells / embed_seconds, 2) if embed_seconds else None,
        "datasets": metrics,
    }


def explain_missing(name: str, failures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The runner's own error for the dataset of this output name, else where to look."""
    found = failures.get(name)
    if found:
        return {"error": found.get("error"), "exit_class": found.get("exit_class")}
    return {"error": "the runner left no output and no error (killed, or never started): see its task log",
            "exit_class": "unknown"}


def discovery_failed_summary(run_id: str) -> dict[str, Any]:
    """summary.json of a run whose discover_datasets task failed: nothing was planned, nothing ran."""
    return {"run_id": run_id, "datasets_planned": 0, "datasets_done": 0, "missing": [], "errors": {},
            "cells": 0, "cells_per_second": None, "datasets": [],
            "error": "discover_datasets failed (bad `data` param or empty data folder): see its task log"}


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
