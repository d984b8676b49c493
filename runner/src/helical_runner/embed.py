"""Cell embeddings with Helical's scGPT, streamed over the cells in chunks so memory stays flat.

Per chunk it builds the inputs Helical's `Dataset` (tokenise: non-zero genes + <cls>) and `DataCollator`
(binning into 51 bins, sampling to 1,200 genes, padding) would, and runs `TransformerModel._encode`. It does not
call `scGPT.process_data` on the chunk because that would (a) try a network Ensembl lookup via
`ensure_gene_symbols` and (b) mutate the AnnData; gene mapping is done once per file in validate.py.

batches.py builds those tensors from the CSR rows in one pass per batch (runner/tests checks they are equal).
Departures from `scGPT.get_embeddings`, each measured in bench/bench_runner.py:
- cells are sorted by gene count within a chunk, so a batch pads to similar lengths (less wasted work);
- the "cell" mean excludes padding positions. Helical averages over the padded length too, which makes
  a cell's embedding depend on which cells share its batch; excluding them makes it a property of the
  cell alone (identical to Helical with batch_size=1);
- bfloat16 where the hardware has native bf16 (PRECISION=auto), fp32 otherwise: autocast on CPU; on CUDA the
  weights themselves, which lets PyTorch's fused encoder run (autocast turns that path off);
- on CUDA the next batches are built by a background thread into pinned memory and copied without blocking,
  so the GPU does not wait for the CPU between batches.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from helical_runner.batches import BatchBuilder
from helical_runner.model import LoadedModel
from helical_runner.startup import StartupClock

LOG = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0
# Batches built ahead of the GPU: enough to hide one slow batch, few enough to keep pinned memory small.
PREFETCH_BATCHES = 3

T = TypeVar("T")


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead; its exception is raised here."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put(exc)

    thread = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def cgroup_cpu_limit() -> int | None:
    """CPUs granted by a container CPU quota (docker --cpus), which torch does not see on its own."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def configure_threads() -> int:
    """One torch thread per granted CPU: more threads than CPUs makes CPU inference several times slower."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        limit = cgroup_cpu_limit()
        threads = min(available, limit) if limit else available
        torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


class Progress:
    """Log lines with cells/s and ETA at most every PROGRESS_EVERY_S seconds (the Airflow task log shows them)."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.started = self.last_log = time.perf_counter()

    def advance(self, cells: int) -> None:
        if cells <= 0:
            return
        self.done += cells
        now = time.perf_counter()
        if now - self.last_log >= PROGRESS_EVERY_S or self.done >= self.total:
            rate = self.done / max(now - self.started, 1e-9)
            LOG.info("%s: embedded %d/%d cells (%.0f%%), %.1f cells/s, ETA %.0fs", self.name, self.done,
                     self.total, 100 * self.done / max(self.total, 1), rate, (self.total - self.done) / max(rate, 1e-9))
            self.last_log = now


class Embedder:
    def __init__(self, loaded: LoadedModel, device: str, precision: str, batch_size: int,
                 clock: StartupClock | None = None) -> None:
        import torch

        self.loaded = loaded
        self.clock = clock
        self.model = loaded.model
        self.config = loaded.config
        self.vocab = loaded.vocab
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.pad_id = self.vocab[self.config["pad_token"]]
        self.builder = BatchBuilder(cls_id=self.vocab["<cls>"], pad_id=self.pad_id,
                                    pad_value=self.config["pad_value"], max_length=self.config["MAX_LENGTH"])
        self.on_gpu = self.device.type == "cuda"
        # bf16 weights on CUDA (PyTorch's fused encoder path); autocast on CPU, whose bf16 kernels want fp32 weights.
        self.weights_dtype = torch.bfloat16 if self.on_gpu and precision == "bf16" else torch.float32
        if self.weights_dtype != torch.float32:
            self.model.to(self.weights_dtype)

    def _autocast(self):
        import torch

        enabled = self.precision == "bf16" and self.weights_dtype == torch.float32
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _batches(self, matrix: sp.csr_matrix, token_ids: np.ndarray, order: np.ndarray) -> Iterator[tuple]:
        """(rows, genes, expr) per batch, as tensors ready to copy (pinned on CUDA)."""
        import torch

        for start in range(0, order.size, self.batch_size):
            rows = order[start:start + self.batch_size]
            genes, expr = (torch.from_numpy(a) for a in self.builder.build(matrix, token_ids, rows))
            if self.on_gpu:
                genes, expr = genes.pin_memory(), expr.pin_memory()
            yield rows, genes, expr

    def embed_matrix(self, matrix, token_ids: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Embeddings (cells x embsize, L2-normalised float32) for one CSR chunk; NaN rows for cells without genes."""
        import torch

        matrix = matrix.tocsr(copy=True)
        matrix.eliminate_zeros()  # stored zeros would otherwise count as expressed genes
        matrix.sort_indices()  # genes in column order, as Helical's dense rows give them
        lengths = np.diff(matrix.indptr)
        out = np.full((matrix.shape[0], self.loaded.dims.embsize), np.nan, dtype=np.float32)
        order = np.flatnonzero(lengths > 0)
        order = order[np.argsort(lengths[order], kind="stable")]
        batches = self._batches(matrix, token_ids, order)
        if self.on_gpu:
            batches = prefetched(batches, PREFETCH_BATCHES)
        done = []  # (rows, embeddings on the device): read back once the chunk is queued, not per batch
        # closing: a failure here (CUDA out of memory...) stops the prefetch thread at once.
        with contextlib.closing(batches), torch.inference_mode(), self._autocast():
            for rows, genes_cpu, expr_cpu in batches:
                genes = genes_cpu.to(self.device, non_blocking=True)
                expr = expr_cpu.to(self.device, dtype=self.weights_dtype, non_blocking=True)
                pad = genes.eq(self.pad_id)
                hidden = self.model._encode(genes, expr, src_key_padding_mask=pad)
                keep = (~pad[:, 1:]).unsqueeze(-1).to(torch.float32)
                summed = (hidden[:, 1:, :].to(torch.float32) * keep).sum(dim=1)
                mean = summed / keep.sum(dim=1).clamp(min=1.0)
                done.append((rows, torch.nn.functional.normalize(mean, dim=1)))
                if self.clock is not None and "first_batch" not in self.clock.marks:
                    if self.on_gpu:
                        torch.cuda.synchronize()  # once: the first batch computed, not just queued
                    self.clock.mark("first_batch")
                if not self.on_gpu:
                    self._read_back(done, out, progress)
            self._read_back(done, out, progress)
        if progress is not None:
            progress.advance(int((lengths == 0).sum()))  # cells without genes count as done
        return out

    @staticmethod
    def _read_back(done: list, out: np.ndarray, progress: Progress | None) -> None:
        for rows, embeddings in done:
            out[rows] = embeddings.cpu().numpy()
            if progress is not None:
                progress.advance(rows.size)
        done.clear()

    def embed_chunks(self, chunks: Iterable[sp.csr_matrix], n_cells: int, token_ids: np.ndarray,
                     name: str) -> np.ndarray:
        """Embeddings of `n_cells` cells that arrive as consecutive row chunks (genes already in vocabulary order)."""
        out = np.empty((n_cells, self.loaded.dims.embsize), dtype=np.float32)
        progress = Progress(name, n_cells)
        done = 0
        for chunk in chunks:
            out[done:done + chunk.shape[0]] = self.embed_matrix(chunk, token_ids, progress)
            done += chunk.shape[0]
        if done != n_cells:
            raise RuntimeError(f"{name}: {done} cells arrived for embedding, {n_cells} were expected")
        return out
