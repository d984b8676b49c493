"""Which .h5ad files under the data folder a run processes: one mapped runner task per file."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

# The runner's own mount point for the data folder.
RUNNER_DATA_DIR = PurePosixPath("/data")


class DataPatternError(ValueError):
    """The `data` param points outside the data folder or matches no dataset."""


def discover_datasets(data_dir: Path, pattern: str) -> list[str]:
    """Runner-side paths (/data/...) of the datasets that `pattern` selects under `data_dir`.

    An empty pattern selects every .h5ad; an empty folder yields ["/data"], for which the runner uses its
    bundled demo dataset. A pattern is a file, a folder or a glob relative to the data folder.
    """
    pattern = pattern.strip().removeprefix(str(RUNNER_DATA_DIR)).lstrip("/")
    if ".." in PurePosixPath(pattern).parts:
        raise DataPatternError(f"data={pattern!r} leaves the data folder: give a path or glob under /data")
    every = sorted(p for p in data_dir.rglob("*.h5ad") if p.is_file())
    if not pattern:
        return [str(RUNNER_DATA_DIR / p.relative_to(data_dir)) for p in every] or [str(RUNNER_DATA_DIR)]
    target = data_dir / pattern
    if target.is_dir():
        chosen = [p for p in every if target in p.parents]
    else:
        chosen = sorted(p for p in data_dir.glob(pattern) if p.is_file() and p.suffix == ".h5ad")
    if not chosen:
        raise DataPatternError(
            f"data={pattern!r} matches no .h5ad file under ./data ({len(every)} present): "
            "drop the files into ./data or fix the pattern"
        )
    return [str(RUNNER_DATA_DIR / p.relative_to(data_dir)) for p in chosen]


def safe_run_id(run_id: str) -> str:
    """A run id usable as a folder and container name (manual__2026-01-01T00:00:00+00:00 has ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
