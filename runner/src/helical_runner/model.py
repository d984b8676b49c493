"""Locate, (optionally) fetch, load and verify the scGPT checkpoint with Helical's own loading code.

Offline first: when the files are in MODEL_DIR no network request is made. Helical's `scGPT()` runs its
Downloader on every file (an S3 HEAD request even when the file exists) and its package imports
transformers, scanpy and every other model (~4 s of CPU in each container), so the runner builds the model
with Helical's `TransformerModel` and `load_pretrained` (helical.models.scgpt.scgpt_utils), imported alone.
`load_pretrained` silently skips tensors whose name or shape does not match the model and leaves them
random; `verify_checkpoint` compares every tensor's name and shape itself and raises instead.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from helical_runner.errors import ConfigError

LOG = logging.getLogger(__name__)

MODEL_FILE = "best_model.pt"
VOCAB_FILE = "vocab.json"
SPECIAL_TOKENS = ("<pad>", "<cls>", "<eoc>")
# Where Helical keeps the files in its bucket (helical.models.scgpt.scgpt_config).
S3_URL = "https://helicalpackage.s3.eu-west-2.amazonaws.com/scgpt/scGPT_CP/{name}"
# Layouts accepted inside MODEL_DIR: flat (what test-model and the runner's own download write),
# Helical's cache layout, and a cache made with CACHE_DIR_HELICAL_PREFIX=MODEL_DIR.
LAYOUTS = (".", "scgpt/scGPT_CP", ".cache/helical/models/scgpt/scGPT_CP")
# Tensors the cell embedding is computed from; anything else (decoders) may differ harmlessly.
EMBEDDING_PREFIXES = ("encoder.", "value_encoder.", "transformer_encoder.")


@dataclass(frozen=True)
class ModelDims:
    embsize: int
    nlayers: int
    nheads: int
    d_hid: int
    n_layers_cls: int = 3

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# Helical's scGPTConfig defaults, i.e. the released whole-human scGPT (also what a folder without args.json has).
SCGPT_DIMS = ModelDims(embsize=512, nlayers=12, nheads=8, d_hid=512, n_layers_cls=3)
# The tiny random-weight test model (`helical-runner test-model`).
TINY_DIMS = ModelDims(embsize=32, nlayers=2, nheads=4, d_hid=64, n_layers_cls=3)


@dataclass
class LoadedModel:
    model: Any  # helical.models.scgpt.model_dir.TransformerModel, on its device, in eval mode
    config: dict[str, Any]  # helical.models.scgpt.scgpt_config.scGPTConfig(...).config: pad token, MAX_LENGTH...
    folder: Path
    dims: ModelDims
    vocab: dict[str, int]
    test_model: bool
    load_seconds: float = 0.0

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.folder / MODEL_FILE), "test_model": self.test_model,
                "vocab_size": len(self.vocab), "load_seconds": round(self.load_seconds, 3), **self.dims.as_dict()}


def scgpt_module(name: str) -> Any:
    """helical.models.scgpt.<name> without running the `__init__` of helical.models and helical.models.scgpt.

    Those import transformers, scanpy, datasets and every model Helical ships; the runner needs only the
    architecture (model_dir), its config and its loader (scgpt_utils), which import torch alone. The stand-in
    packages live only while the module is imported: a later `import helical.models.scgpt` runs the real
    `__init__`s and finds the same submodules.
    """
    import importlib
    import importlib.util
    import sys
    import types

    stand_ins = []
    for package in ("helical.models", "helical.models.scgpt", "helical.utils"):
        if package not in sys.modules:
            spec = importlib.util.find_spec(package)
            if spec is None or spec.submodule_search_locations is None:
                raise ImportError(f"{package} is not installed; reinstall helical")
            module = types.ModuleType(package)
            module.__spec__, module.__path__ = spec, list(spec.submodule_search_locations)
            sys.modules[package] = module
            stand_ins.append(package)
    try:
        return importlib.import_module(f"helical.models.scgpt.{name}")
    finally:
        for package in stand_ins:
            del sys.modules[package]


def build_transformer(vocab: dict[str, int], dims: ModelDims, dropout: float = 0.2) -> Any:
    """Helical's TransformerModel with the exact arguments of helical.models.scgpt.scgpt_utils.load_model."""
    return scgpt_module("model_dir").TransformerModel(
        ntoken=len(vocab), d_model=dims.embsize, nhead=dims.nheads, d_hid=dims.d_hid, nlayers=dims.nlayers,
        nlayers_cls=dims.n_layers_cls, n_cls=1, vocab=vocab, dropout=dropout, pad_token="<pad>", pad_value=-2,
        do_mvc=True, do_dab=False, use_batch_labels=False, domain_spec_batchnorm=False,
        explicit_zero_prob=False, pre_norm=False,
    )


def find_model_folder(model_dir: Path) -> Path | None:
    for layout in LAYOUTS:
        folder = (model_dir / layout).resolve()
        if (folder / MODEL_FILE).is_file() and (folder / VOCAB_FILE).is_file():
            return folder
    return None


def _missing_message(model_dir: Path, reason: str) -> str:
    missing = [n for n in (MODEL_FILE, VOCAB_FILE) if not (model_dir / n).is_file()]
    return (
        f"scGPT model files missing in MODEL_DIR {model_dir}: {', '.join(missing)} ({reason}); "
        "run `make models` on a machine with internet access and mount that folder at MODEL_DIR, "
        "or `helical-runner test-model --out DIR` for a tiny test model"
    )


def download_model(model_dir: Path) -> Path:
    """One attempt with Helical's Downloader; fails fast (10 s) when S3 cannot be reached."""
    try:
        from helical.utils.downloader import HEAD_TIMEOUT_SECONDS, Downloader

        downloader = Downloader()
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in (VOCAB_FILE, MODEL_FILE):
            target = model_dir / name
            if target.is_file():
                continue
            url = S3_URL.format(name=name)
            # download_via_link has no timeout; probe first so a firewall that drops packets fails fast.
            head = downloader.session.head(url, timeout=HEAD_TIMEOUT_SECONDS)
            head.raise_for_status()
            partial = target.with_name(f".{name}.partial")
            partial.unlink(missing_ok=True)
            LOG.info("downloading %s to %s", url, target)
            downloader.download_via_link(partial, url)
            if not downloader.check_file_valid(url, partial):
                raise OSError(f"{name} failed Helical's checksum after download")
            os.replace(partial, target)  # a half-downloaded file never looks like a model
    except Exception as exc:
        raise ConfigError(_missing_message(model_dir, f"download failed: {type(exc).__name__}: {exc}")) from None
    return model_dir


def read_dims(folder: Path) -> tuple[ModelDims, bool]:
    """args.json (written by test-model, and shipped with scGPT's own releases) else Helical's defaults."""
    args_file = folder / "args.json"
    if not args_file.is_file():
        return SCGPT_DIMS, False
    args = json.loads(args_file.read_text())
    dims = ModelDims(**{key: int(args.get(key, default)) for key, default in SCGPT_DIMS.as_dict().items()})
    return dims, bool(args.get("test_model", False))


def verify_checkpoint(checkpoint: dict[str, Any], model: Any, path: Path) -> None:
    """Raise unless every tensor the embedding uses is in the checkpoint with the model's shape.

    Keys are renamed as Helical's load_pretrained does (flash-attention `Wqkv.` -> `in_proj_`).
    Decoder heads unused for embeddings may be absent or extra (logged); a shape mismatch anywhere
    means a different architecture and is an error.
    """
    params = {k.replace("Wqkv.", "in_proj_"): v for k, v in checkpoint.items()}
    expected = model.state_dict()
    wrong_shape = [f"{k} {tuple(params[k].shape)} vs model {tuple(v.shape)}"
                   for k, v in expected.items() if k in params and tuple(params[k].shape) != tuple(v.shape)]
    missing = [k for k in expected if k not in params and k.startswith(EMBEDDING_PREFIXES)]
    if wrong_shape or missing:
        details = "; ".join(wrong_shape[:3] + [f"missing {k}" for k in missing[:3]])
        raise ConfigError(
            f"{path}: checkpoint does not match scGPT's architecture ({len(wrong_shape)} tensor(s) with another "
            f"shape, {len(missing)} missing: {details}); Helical would silently leave them random. "
            "Re-download the model (`make models`) or check args.json / the vocab.json next to it"
        )
    unused = sorted(set(params) - set(expected)) + [k for k in expected if k not in params]
    if unused:
        LOG.warning("%s: %d decoder tensor(s) absent or unused (not needed for embeddings): %s",
                    path.name, len(unused), ", ".join(unused[:5]))


def load_model(model_dir: Path, device: str) -> LoadedModel:
    import time

    import torch

    started = time.perf_counter()
    folder = find_model_folder(model_dir)
    if folder is None:
        # Runs read /models read-only and have no network: weights come from `make models` (fetch-model) only.
        raise ConfigError(_missing_message(model_dir, "a run never downloads them"))
    dims, is_test = read_dims(folder)
    model_path = folder / MODEL_FILE
    try:
        vocab = json.loads((folder / VOCAB_FILE).read_text())
        try:
            # mmap: tensors are paged in as they are copied into the model, never read twice.
            checkpoint = torch.load(model_path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (pre-zipfile) checkpoints cannot be memory-mapped
            checkpoint = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{model_path}: cannot read the checkpoint ({type(exc).__name__}: {exc}); "
                          "re-download it with `make models`") from None
    missing_tokens = [t for t in SPECIAL_TOKENS[:2] if t not in vocab]
    if missing_tokens:
        raise ConfigError(
            f"{folder / VOCAB_FILE}: lacks {', '.join(missing_tokens)}; it is not Helical's scGPT vocab.json"
        )

    # What Helical's scGPT(configurer=...) does, minus its Downloader: scgpt_utils.load_model's TransformerModel
    # (build_transformer), load_pretrained, the device, eval mode. The config supplies pad token and MAX_LENGTH.
    config = scgpt_module("scgpt_config").scGPTConfig(
        device=device, embsize=dims.embsize, nlayers=dims.nlayers, nheads=dims.nheads, d_hid=dims.d_hid,
        n_layers_cls=dims.n_layers_cls).config
    model = build_transformer(vocab, dims, dropout=config["dropout"])
    # load_pretrained loads exactly the tensors whose name and shape match, so this check is complete.
    verify_checkpoint(checkpoint, model, model_path)
    scgpt_module("scgpt_utils").load_pretrained(model, checkpoint, verbose=False)
    del checkpoint
    model.to(device)
    model.eval()
    loaded = LoadedModel(model, config, folder, dims, vocab, is_test, time.perf_counter() - started)
    if is_test:
        LOG.warning("TEST MODEL: %s holds random weights (test_model: true); embeddings are for smoke tests only",
                    model_path)
    LOG.info("loaded scGPT from %s on %s in %.1fs (%s, %d tokens)", model_path, device, loaded.load_seconds,
             dims, len(vocab))
    return loaded
