"""Cell embeddings with Helical's scGPT, streamed over the cells in chunks so memory stays flat.

Per chunk it builds the inputs Helical's `Dataset` (tokenise: non-zero genes + <cls>) and `DataCollator`
(binning into 51 bins, sampling to 1,200 genes, padding) would, and runs the encoder (encoders.py: Helical's
`TransformerModel._encode`, or the same modules on packed tokens). It does not call `scGPT.process_data` on the
chunk because that would (a) try a network Ensembl lookup via `ensure_gene_symbols` and (b) mutate the AnnData;
gene mapping is done once per file in validate.py.

batches.py builds those tensors from the CSR rows in one pass per batch (runner/tests checks they are equal).
Departures from `scGPT.get_embeddings`, each measured in bench/bench_runner.py:
- cells are sorted by gene count within a chunk, so a batch pads to similar lengths (less wasted work);
- the "cell" mean excludes padding positions. Helical averages over the padded length too, which makes
  a cell's embedding depend on which cells share its batch; excluding them makes it a property of the
  cell alone (identical to Helical with batch_size=1);
- bfloat16 where the hardware has native bf16 (PRECISION=auto), fp32 otherwise: autocast on CPU; on CUDA the
  weights themselves (no per-operation casts);
- on CUDA the GPU is never waited for inside the loop: a background thread reads the chunks and builds the next
  batches into pinned memory (copied without blocking), and each batch's embeddings come back by a
  non-blocking copy into pinned memory, collected once its CUDA event has passed.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from helical_runner.batches import BatchBuilder
from helical_runner.encoders import Batch, Encoder, HelicalEncoder, PackedCells, choose_encoder, probe_cells
from helical_runner.model import SPECIAL_TOKENS, LoadedModel
from helical_runner.startup import StartupClock

LOG = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0
# Batches built ahead of the GPU: enough to cover reading the next chunk, few enough to keep pinned memory small.
PREFETCH_BATCHES = 8

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


@dataclass
class EmbedTiming:
    """Where one dataset's embedding time went (metrics.json `embed_timing`, the benchmark's host/device split)."""

    seconds: float = 0.0  # the whole embedding, first batch to last result
    host_build_seconds: float = 0.0  # reading chunks and building batches (beside the device on CUDA)
    host_wait_seconds: float = 0.0  # the loop waiting for its next batch
    host_launch_seconds: float = 0.0  # issuing each batch's work (on CPU: computing it)
    host_readback_seconds: float = 0.0  # waiting for the last results and copying them out
    device_seconds: float | None = None  # CUDA: each batch's first to last operation on the GPU, summed
    batches: int = 0
    cells: int = 0
    tokens: int = 0  # token positions the encoder computed, padding included

    def report(self) -> dict[str, Any]:
        busy = self.device_seconds / self.seconds if self.device_seconds is not None and self.seconds else None
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()} | {
            "device_busy": None if busy is None else round(busy, 4)}


@dataclass
class InFlight:
    rows: np.ndarray
    host: Any  # pinned torch tensor the embeddings are copied into
    start: Any  # torch.cuda.Event recorded before the batch's first operation
    done: Any  # torch.cuda.Event recorded after the copy back


class Embedder:
    def __init__(self, loaded: LoadedModel, device: str, precision: str, batch_size: int,
                 clock: StartupClock | None = None, encoder: str = "auto", compile_backend: str | None = None) -> None:
        import torch

        self.loaded = loaded
        self.clock: StartupClock | None = None  # set once the probe is done: its batch is not the first
        self.model = loaded.model
        self.config = loaded.config
        self.vocab = loaded.vocab
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.builder = BatchBuilder(cls_id=self.vocab["<cls>"], pad_id=self.vocab[self.config["pad_token"]],
                                    pad_value=self.config["pad_value"], max_length=self.config["MAX_LENGTH"])
        self.on_gpu = self.device.type == "cuda"
        # bf16 weights on CUDA; autocast on CPU, whose bf16 kernels want fp32 weights.
        self.weights_dtype = torch.bfloat16 if self.on_gpu and precision == "bf16" else torch.float32
        if self.weights_dtype != torch.float32:
            self.model.to(self.weights_dtype)
        self.timing = EmbedTiming()  # of the last dataset
        helical = HelicalEncoder(self.model, self.builder, batch_size)
        self.encoder: Encoder = choose_encoder(
            encoder, self.device, helical, lambda: PackedCells(self.model, self.builder, batch_size, compile_backend),
            self.agreement)
        self.clock = clock

    def _autocast(self):
        import torch

        enabled = self.precision == "bf16" and self.weights_dtype == torch.float32
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def agreement(self, reference: Encoder, candidate: Encoder) -> float:
        """The smallest per-cell cosine between two encoders on the probe cells: all of them in one batch
        (different lengths), and the equal-length ones alone (the uniform path)."""
        special = np.array([self.vocab[t] for t in SPECIAL_TOKENS if t in self.vocab])
        matrix, token_ids = probe_cells(len(self.vocab), special)
        lengths = np.diff(matrix.indptr)
        same = np.flatnonzero(lengths == lengths.max())
        lowest = 1.0
        for cells in (matrix, matrix[same]):
            a, b = (self.embed_chunks([cells], cells.shape[0], token_ids, "probe", e) for e in (reference, candidate))
            lowest = min(lowest, float((a * b).sum(axis=1).min()))  # both L2-normalised
        return lowest

    def _batches(self, chunks: Iterable[sp.csr_matrix], token_ids: np.ndarray, encoder: Encoder,
                 timing: EmbedTiming) -> Iterator[Batch]:
        """Every chunk's batches, cells sorted by gene count within a chunk; rows counted across chunks."""
        offset, started = 0, time.perf_counter()
        for chunk in chunks:
            matrix = chunk.tocsr(copy=True)
            matrix.eliminate_zeros()  # stored zeros would otherwise count as expressed genes
            matrix.sort_indices()  # genes in column order, as Helical's dense rows give them
            genes = np.diff(matrix.indptr)
            order = np.flatnonzero(genes > 0)
            order = order[np.argsort(genes[order], kind="stable")]
            for rows in encoder.plan(order, genes):
                batch = encoder.build(matrix, token_ids, rows)
                batch.rows = rows + offset
                if self.on_gpu:
                    batch.tensors = {k: v.pin_memory() for k, v in batch.tensors.items()}
                timing.host_build_seconds += time.perf_counter() - started
                yield batch
                started = time.perf_counter()
            offset += matrix.shape[0]
        timing.cells = offset
        timing.host_build_seconds += time.perf_counter() - started

    def embed_chunks(self, chunks: Iterable[sp.csr_matrix], n_cells: int, token_ids: np.ndarray, name: str,
                     encoder: Encoder | None = None) -> np.ndarray:
        """L2-normalised float32 embeddings of `n_cells` cells that arrive as consecutive CSR row chunks (genes in
        vocabulary order); NaN rows for cells without genes."""
        import torch

        encoder = encoder or self.encoder
        out = np.full((n_cells, self.loaded.dims.embsize), np.nan, dtype=np.float32)
        progress = Progress(name, n_cells)
        timing = EmbedTiming()
        batches = self._batches(chunks, token_ids, encoder, timing)
        if self.on_gpu:
            batches = prefetched(batches, PREFETCH_BATCHES)
        in_flight: list[InFlight] = []
        timing.device_seconds = 0.0 if self.on_gpu else None
        started = waited = time.perf_counter()
        # closing: a failure here (CUDA out of memory...) stops the prefetch thread at once.
        with contextlib.closing(batches), torch.inference_mode(), self._autocast():
            for batch in batches:
                launched = time.perf_counter()
                timing.host_wait_seconds += launched - waited
                timing.batches += 1
                timing.tokens += batch.tensors["genes"].numel()
                if self.on_gpu:
                    start, done = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                tensors = {k: v.to(self.device, non_blocking=True) for k, v in batch.tensors.items()}
                embeddings = encoder.embed(tensors, batch, self.weights_dtype)
                if self.on_gpu:
                    host = torch.empty(embeddings.shape, dtype=embeddings.dtype, pin_memory=True)
                    host.copy_(embeddings, non_blocking=True)
                    done.record()
                    in_flight.append(InFlight(batch.rows, host, start, done))
                    self._collect(in_flight, out, progress, timing, wait=False)
                else:
                    out[batch.rows] = embeddings.numpy()
                    progress.advance(batch.rows.size)
                self._mark_first_batch(in_flight)
                waited = time.perf_counter()
                timing.host_launch_seconds += waited - launched
            self._collect(in_flight, out, progress, timing, wait=True)
        timing.host_readback_seconds = time.perf_counter() - waited
        timing.seconds = time.perf_counter() - started
        if timing.cells != n_cells:
            raise RuntimeError(f"{name}: {timing.cells} cells arrived for embedding, {n_cells} were expected")
        progress.advance(n_cells - progress.done)  # cells without genes count as done
        self.timing = timing
        return out

    def _mark_first_batch(self, in_flight: list[InFlight]) -> None:
        if self.clock is not None and "first_batch" not in self.clock.marks:
            if in_flight:
                in_flight[-1].done.synchronize()  # once: the first batch computed, not just queued
            self.clock.mark("first_batch")

    @staticmethod
    def _collect(in_flight: list[InFlight], out: np.ndarray, progress: Progress, timing: EmbedTiming,
                 wait: bool) -> None:
        """Results whose copy has finished (all of them when `wait`), into `out`, oldest first; their GPU time."""
        while in_flight and (wait or in_flight[0].done.query()):
            item = in_flight.pop(0)
            item.done.synchronize()
            out[item.rows] = item.host.numpy()
            progress.advance(item.rows.size)
            timing.device_seconds += item.start.elapsed_time(item.done) / 1e3
