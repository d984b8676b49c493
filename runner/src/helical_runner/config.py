"""Settings: every flag also reads the env var of the same name in upper case (docs/contracts.md).

Precedence: flag > env var > default. Defaults are the container's mount points, so the image runs
with no arguments at all, as the original `python run_helical.py` did.
"""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from helical_runner.contract import CLASSIFIER_MODES, DATA_DIR, DEVICES, ENCODERS, MODEL_DIR, OUTPUT_DIR
from helical_runner.errors import ConfigError

# (flag, env var, default, help). The one table a newcomer reads to learn the knobs.
RUN_OPTIONS: list[tuple[str, str, str | None, str]] = [
    ("--data", "DATA_DIR", DATA_DIR, "an .h5ad file or a folder searched recursively; no .h5ad = demo data. "
     "Repeat it to run several files in one container (the workflow's datasets_per_task)"),
    ("--name", "DATASET_NAME", None, "output folder name of the file --data names, one per --data when repeated "
     "(the workflow passes names unique within the run); default: the file stem"),
    ("--output-dir", "OUTPUT_DIR", OUTPUT_DIR, "results go to OUTPUT_DIR/<run_id>/<dataset>/"),
    ("--model-dir", "MODEL_DIR", MODEL_DIR, "scGPT files (best_model.pt, vocab.json), e.g. from `make models`"),
    ("--run-id", "RUN_ID", None, "run folder name; default: UTC timestamp + random suffix"),
    ("--device", "DEVICE", "auto", "auto|cpu|cuda; auto picks cuda when torch sees a GPU"),
    ("--max-cells", "MAX_CELLS", "0", "seeded, label-stratified subsample per dataset; 0 = all cells"),
    ("--batch-size", "BATCH_SIZE", "24", "cells per forward pass (Helical's default is 24)"),
    ("--label-key", "LABEL_KEY", None, "obs column with cell labels; default: auto-detect"),
    ("--gene-key", "GENE_KEY", None, "var column with gene symbols, or 'index'; default: auto-detect"),
    ("--classifier", "CLASSIFIER", "auto", "auto (when labels exist) | on (labels required) | off"),
    ("--statsd-host", "STATSD_HOST", None, "send helical.runner.* metrics there; unset = no metrics"),
    ("--statsd-port", "STATSD_PORT", "9125", "StatsD UDP port"),
    ("--precision", "PRECISION", "auto",
     "auto|fp32|bf16; auto = bf16 for full-size models on hardware with native bf16"),
    ("--chunk-cells", "CHUNK_CELLS", "2048", "cells read from disk at a time; bounds memory"),
    ("--encoder", "ENCODER", "auto",
     "auto|helical|packed; helical = Helical's TransformerModel on padded batches of BATCH_SIZE cells, packed = "
     "its modules on packed tokens, batches of BATCH_SIZE x 1,200 tokens, used once it agrees with helical on "
     "probe cells; auto = packed on cuda, helical on cpu"),
]

LABEL_CANDIDATES = ("LVL1", "cell_type", "celltype", "cell_types", "CellType", "bulk_labels", "labels", "label")


# Flags that may be given once per dataset, in pairs (--data a.h5ad --name a --data b.h5ad --name b).
REPEATABLE = ("--data", "--name")


@dataclass(frozen=True)
class Settings:
    data: tuple[Path, ...]
    names: tuple[str | None, ...]  # one per data path, or all None
    output_dir: Path
    model_dir: Path
    run_id: str
    device: str
    max_cells: int
    batch_size: int
    label_key: str | None
    gene_key: str | None
    classifier: str
    statsd_host: str | None
    statsd_port: int
    precision: str
    chunk_cells: int
    encoder: str


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, env, default, help_text in RUN_OPTIONS:
        shown = "unset" if default is None else default
        parser.add_argument(flag, dest=_dest(flag), default=None, help=f"{help_text} [env {env}, default {shown}]",
                            action="append" if flag in REPEATABLE else "store")


def default_run_id() -> str:
    # Sortable by time, and unique even when two runs start in the same second.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def _int(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer; set it to a whole number") from None
    if number < minimum:
        raise ConfigError(f"{name}={number} must be >= {minimum}")
    return number


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    value = value.lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {'|'.join(choices)}")
    return value


def _folder_name(name: str, value: str) -> str:
    if "/" in value or value.startswith("."):
        raise ConfigError(f"{name}={value!r} must be a plain folder name (no '/', not starting with '.')")
    return value


def _datasets(data: list[str], names: list[str]) -> tuple[tuple[Path, ...], tuple[str | None, ...]]:
    """The --data paths and their --name (paired in order), or no names at all."""
    if names and len(names) != len(data):
        raise ConfigError(f"{len(names)} --name for {len(data)} --data: give one name per --data, or none")
    if len(set(names)) < len(names):
        raise ConfigError(f"--name values repeat ({', '.join(names)}): each dataset needs its own output folder")
    return tuple(Path(d) for d in data), tuple(_folder_name("DATASET_NAME", n) for n in names) or (None,) * len(data)


def settings_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    raw: dict[str, str | None] = {}
    repeated: dict[str, list[str]] = {}
    for flag, name, default, _ in RUN_OPTIONS:
        value = getattr(args, _dest(flag), None)
        if flag in REPEATABLE:  # the flags as given, else the env var's one value, else the default's
            repeated[name] = value or [v for v in (env.get(name) or default,) if v]
            continue
        if value is None:
            value = env.get(name) or default  # an empty env var means "use the default"
        raw[name] = value
    run_id = _folder_name("RUN_ID", raw["RUN_ID"] or default_run_id())
    data, names = _datasets(repeated["DATA_DIR"], repeated["DATASET_NAME"])
    return Settings(
        data=data,
        names=names,
        output_dir=Path(str(raw["OUTPUT_DIR"])),
        model_dir=Path(str(raw["MODEL_DIR"])),
        run_id=run_id,
        device=_choice("DEVICE", str(raw["DEVICE"]), DEVICES),
        max_cells=_int("MAX_CELLS", str(raw["MAX_CELLS"]), 0),
        batch_size=_int("BATCH_SIZE", str(raw["BATCH_SIZE"]), 1),
        label_key=raw["LABEL_KEY"],
        gene_key=raw["GENE_KEY"],
        classifier=_choice("CLASSIFIER", str(raw["CLASSIFIER"]), CLASSIFIER_MODES),
        statsd_host=raw["STATSD_HOST"],
        statsd_port=_int("STATSD_PORT", str(raw["STATSD_PORT"]), 1),
        precision=_choice("PRECISION", str(raw["PRECISION"]), ("auto", "fp32", "bf16")),
        chunk_cells=_int("CHUNK_CELLS", str(raw["CHUNK_CELLS"]), 1),
        encoder=_choice("ENCODER", str(raw["ENCODER"]), ENCODERS),
    )


def resolve_device(requested: str) -> str:
    """auto -> cuda when torch sees a GPU; cuda without a GPU is a configuration error."""
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ConfigError("DEVICE=cuda but torch sees no GPU; run the GPU image with --gpus, or set DEVICE=cpu")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


# Below this width bf16 is slower on CPU: oneDNN builds a kernel per batch shape and the matmuls are
# too small to repay it (measured: tiny test model 340 -> 60 cells/s; real dims 14 -> 33 cells/s).
BF16_MIN_EMBSIZE = 256


def resolve_precision(requested: str, device: str, embsize: int) -> str:
    """bf16 only where the hardware computes it natively; elsewhere emulation is slower than fp32."""
    if requested != "auto":
        return requested
    import torch

    if embsize < BF16_MIN_EMBSIZE:
        return "fp32"

    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the instructions that make bf16 matmuls faster than fp32 on CPU."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch without these probes: stay on the safe side
        return False
