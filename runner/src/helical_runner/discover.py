"""Find the datasets of a run: every .h5ad under a file or folder, or the demo data when there is none."""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from helical_runner.errors import ConfigError

LOG = logging.getLogger(__name__)

DEMO_NAME = "pbmc68k_reduced"


@dataclass(frozen=True)
class DatasetSource:
    name: str  # output folder name: given by the workflow, else the file stem made unique among the files found
    path: Path
    is_demo: bool = False


def demo_path() -> Path:
    """scanpy's pbmc68k_reduced (700 cells, `bulk_labels`) ships inside the scanpy wheel: no download.

    `scanpy.datasets.pbmc68k_reduced()` reads this same file; the runner reads it through the
    same streaming loader as user data, so the demo exercises the real code path. Found without importing
    scanpy (~2 s of CPU that a run never needs).
    """
    spec = importlib.util.find_spec("scanpy")
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    path = (folder or Path("scanpy-not-installed")) / "datasets" / "10x_pbmc68k_reduced.h5ad"
    if not path.is_file():
        raise ConfigError(f"demo data {path} is missing from the installed scanpy; reinstall scanpy")
    return path


def metric_name(name: str) -> str:
    """Dataset name as StatsD allows it: lower-case [a-z0-9_] only (contracts.md)."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_") or "dataset"


def find_all_datasets(data: tuple[Path, ...], names: tuple[str | None, ...]) -> list[DatasetSource]:
    """The datasets of every --data (with its --name), in order; two that would share an output folder are refused."""
    sources = [source for path, name in zip(data, names, strict=True) for source in find_datasets(path, name)]
    seen: dict[str, Path] = {}
    for source in sources:
        if source.name in seen:
            raise ConfigError(f"{seen[source.name]} and {source.path} would both be published as '{source.name}': "
                              "give each --data its own --name")
        seen[source.name] = source.path
    return sources


def find_datasets(data: Path, name: str | None = None) -> list[DatasetSource]:
    """The datasets under `data`; `name` (DATASET_NAME) names the output of a single file."""
    if not data.exists():
        raise ConfigError(f"DATA_DIR {data} does not exist; mount a folder or file there, or set DATA_DIR/--data")
    if data.is_file():
        if data.suffix != ".h5ad":
            LOG.warning("%s does not end in .h5ad; trying it anyway because it was named explicitly", data)
        return [DatasetSource(name or data.stem, data)]
    if name:
        raise ConfigError(f"DATASET_NAME={name!r} names one dataset, but DATA_DIR {data} is a folder: "
                          "give --data one .h5ad file, or leave the name out")
    # Hidden folders hold editor and sync leftovers, never data; sorted for a reproducible order.
    files = sorted(
        p for p in data.rglob("*.h5ad") if not any(part.startswith(".") for part in p.relative_to(data).parts)
    )
    if not files:
        LOG.info("no .h5ad under %s: using the demo dataset %s (ships with scanpy, no download)", data, DEMO_NAME)
        return [DatasetSource(DEMO_NAME, demo_path(), is_demo=True)]
    sources: list[DatasetSource] = []
    used: set[str] = set()
    for path in files:
        # Two files with one stem in different subfolders must not share an output folder.
        name, n = path.stem, 2
        while name in used:
            name, n = f"{path.stem}-{n}", n + 1
        used.add(name)
        sources.append(DatasetSource(name, path))
    LOG.info("found %d dataset(s) under %s: %s", len(sources), data, ", ".join(s.name for s in sources))
    return sources
