"""The two encoders the Embedder runs, and which one a run uses (ENCODER).

- `helical`: Helical's own `TransformerModel._encode` on padded batches of BATCH_SIZE cells: the reference.
- `packed`: the same modules and weights on packed tokens (packed.py), batches of up to BATCH_SIZE x MAX_LENGTH
  tokens, so a batch of short cells holds many more of them and nothing is spent on padding.
Both give the runner's cell embedding: the mean of the last layer over a cell's genes (<cls> and padding left
out), L2-normalised, float32.

ENCODER=auto runs `packed` on CUDA and `helical` on CPU (the path docs/benchmarks/ holds to the >= 3x target on
the AMX reference machine; `packed` has been measured on CPU only on another, loaded box). `packed` is used only once it
has agreed with `helical` on a probe batch (cells of very different lengths, on this device, with these weights,
at this precision): per-cell cosine >= MIN_COSINE. Otherwise auto falls back to `helical` with a warning, and
ENCODER=packed is a configuration error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from helical_runner.batches import BatchBuilder, token_batches
from helical_runner.errors import ConfigError
from helical_runner.packed import PackedEncoder, Segments, unsupported

LOG = logging.getLogger(__name__)

MIN_COSINE = 0.999  # issue #25's bar: per cell, against Helical's own model
# Probe cells' gene counts: one gene, short, past one 128-token attention tile, and two equal (the uniform path).
PROBE_GENES = (1, 6, 37, 130, 300, 300)


@dataclass
class Batch:
    rows: np.ndarray  # the cells' rows: in their chunk from build(), in the dataset once the Embedder has it
    tensors: dict[str, torch.Tensor]  # host tensors (pinned on CUDA), copied to the device as they are
    max_len: int  # the longest cell's tokens
    uniform: bool  # every cell has max_len tokens


class Encoder(Protocol):
    name: str

    def plan(self, order: np.ndarray, genes_per_cell: np.ndarray) -> list[np.ndarray]: ...

    def build(self, matrix: sp.csr_matrix, token_ids: np.ndarray, rows: np.ndarray) -> Batch: ...

    def embed(self, tensors: dict[str, torch.Tensor], batch: Batch, dtype: torch.dtype) -> torch.Tensor: ...


class HelicalEncoder:
    name = "helical"

    def __init__(self, model: Any, builder: BatchBuilder, batch_size: int) -> None:
        self.model, self.builder, self.batch_size = model, builder, batch_size

    def plan(self, order: np.ndarray, genes_per_cell: np.ndarray) -> list[np.ndarray]:
        return [order[start:start + self.batch_size] for start in range(0, order.size, self.batch_size)]

    def build(self, matrix: sp.csr_matrix, token_ids: np.ndarray, rows: np.ndarray) -> Batch:
        genes, expr = self.builder.build(matrix, token_ids, rows)
        return Batch(rows, {"genes": torch.from_numpy(genes), "expr": torch.from_numpy(expr)}, genes.shape[1], False)

    def embed(self, tensors: dict[str, torch.Tensor], batch: Batch, dtype: torch.dtype) -> torch.Tensor:
        genes, expr = tensors["genes"], tensors["expr"].to(dtype)
        pad = genes.eq(self.builder.pad_id)
        hidden = self.model._encode(genes, expr, src_key_padding_mask=pad)
        keep = (~pad[:, 1:]).unsqueeze(-1).to(torch.float32)
        mean = (hidden[:, 1:, :].to(torch.float32) * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return F.normalize(mean, dim=1)


class PackedCells:
    name = "packed"

    def __init__(self, model: Any, builder: BatchBuilder, batch_size: int, compile_backend: str | None = None) -> None:
        self.encoder = PackedEncoder(model, compile_backend)
        self.builder, self.budget = builder, batch_size * builder.max_length

    def plan(self, order: np.ndarray, genes_per_cell: np.ndarray) -> list[np.ndarray]:
        return token_batches(order, self.builder.tokens_per_cell(genes_per_cell), self.budget)

    def build(self, matrix: sp.csr_matrix, token_ids: np.ndarray, rows: np.ndarray) -> Batch:
        packed = self.builder.packed(matrix, token_ids, rows)
        cell, position = packed.cell_and_position()
        cu_seqlens = np.concatenate([[0], np.cumsum(packed.lengths)]).astype(np.int32)
        tensors = {"genes": packed.genes, "expr": packed.expr, "cu_seqlens": cu_seqlens, "cell": cell,
                   "position": position}
        lengths = packed.lengths
        return Batch(rows, {k: torch.from_numpy(v) for k, v in tensors.items()}, int(lengths.max()),
                     bool(lengths.min() == lengths.max()))

    def embed(self, tensors: dict[str, torch.Tensor], batch: Batch, dtype: torch.dtype) -> torch.Tensor:
        seg = Segments(tensors["cu_seqlens"], tensors["cell"], tensors["position"], batch.max_len, batch.uniform)
        hidden = self.encoder.encode(tensors["genes"], tensors["expr"].to(dtype), seg)
        return F.normalize(cell_means(hidden, seg), dim=1)


def cell_means(hidden: torch.Tensor, seg: Segments) -> torch.Tensor:
    """Each cell's mean over its genes (<cls> left out), float32: one pass over `hidden`, no atomics."""
    if seg.uniform:
        return hidden.view(seg.n_cells, seg.max_len, -1)[:, 1:].mean(dim=1, dtype=torch.float32)
    hidden = hidden.to(torch.float32)
    sums = torch.segment_reduce(hidden, "sum", offsets=seg.cu_seqlens, axis=0) - hidden[seg.cu_seqlens[:-1].long()]
    genes = (seg.cu_seqlens[1:] - seg.cu_seqlens[:-1] - 1).clamp(min=1)
    return sums / genes[:, None]


def probe_cells(vocab_size: int, special: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """PROBE_GENES cells of random raw counts over random genes of the vocabulary (seeded)."""
    rng = np.random.default_rng(25)
    n_genes = max(PROBE_GENES) * 4
    token_ids = rng.choice(np.setdiff1d(np.arange(vocab_size), special), n_genes)
    rows = [np.sort(rng.choice(n_genes, n, replace=False)) for n in PROBE_GENES]
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])])
    data = rng.poisson(3.0, indptr[-1]).astype(np.float32) + 1
    return sp.csr_matrix((data, np.concatenate(rows), indptr), shape=(len(rows), n_genes)), token_ids


def choose_encoder(setting: str, device: torch.device, helical: HelicalEncoder, make_packed: Callable[[], PackedCells],
                   agreement: Callable[[Encoder, Encoder], float]) -> Encoder:
    """The encoder ENCODER=`setting` asks for, packed only where `agreement(helical, packed)` (the smallest
    per-cell cosine on the probe) reaches MIN_COSINE."""
    if setting == "helical" or (setting == "auto" and device.type != "cuda"):
        return helical
    reason = unsupported(helical.model)
    if reason is None:
        try:
            packed = make_packed()
            cosine = agreement(helical, packed)
        except Exception as exc:  # a kernel this torch or device lacks: not proven, so not used
            LOG.debug("the packed encoder failed on the probe cells", exc_info=True)
            reason = f"it failed on the probe cells ({type(exc).__name__}: {str(exc)[:200]})"
        else:
            if cosine >= MIN_COSINE:
                LOG.info("encoder packed: agrees with Helical's on the probe cells (min cosine %.6f)", cosine)
                return packed
            reason = f"it disagrees with Helical's on the probe cells (min cosine {cosine:.6f} < {MIN_COSINE})"
    if setting == "packed":
        raise ConfigError(f"ENCODER=packed: {reason}; set ENCODER=helical (or auto)")
    LOG.warning("encoder helical: the packed encoder is not used because %s", reason)
    return helical
