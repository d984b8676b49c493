"""`bench_runner.py --device cuda`: the GPU case (issue #25), on a machine with one NVIDIA GPU.

8,000 synthetic raw-count cells expressing 1,500 of 4,000 real genes each (every sequence at scGPT's 1,200-gene
cap, so no path pads and all compute the same function), real scGPT dims, random weights. Three parts:
1. the attention kernel alone, as each path calls it (64 cells x 1,200 tokens, bf16);
2. end to end: the naive Helical path (its fp16 autocast) and the runner's CLI, each in its own process; cells/s
   is the CLI's own (metrics.json: cells / embed stage, first batch included), device busy and the host split
   are its `embed_timing` (CUDA events);
3. the runner's Embedder alone, warmed up, one process for every variant: cells/s, the GPU's busy share by
   nvidia-smi (every 100 ms) and by CUDA events, where the host's time went; variants no CLI flag selects
   (cuDNN attention preferred, torch.compile) are measured here only.
Every row's cosine (min / mean over cells) is against the naive path's embeddings of the same cells.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_runner import HERE, cosine, run_measured, run_runner, synthetic

# (label, encoder, precision, batch size) of the CLI runs.
CLI_RUNS = (("runner helical bf16, batch 64", "helical", "bf16", 64),
            ("runner packed bf16, batch 24", "packed", "bf16", 24),
            ("runner packed bf16, batch 64", "packed", "bf16", 64))
# (label, encoder, batch size, attention preference, torch.compile backend) of the Embedder-alone runs.
ALONE_RUNS = (("helical, batch 64", "helical", 64, None, None),
              ("packed, batch 64", "packed", 64, None, None),
              ("packed, batch 64, cuDNN attention first", "packed", 64, "cudnn", None),
              ("packed, batch 128", "packed", 128, None, None),
              ("packed, batch 64, torch.compile", "packed", 64, None, "inductor"))
CHILD_TIMEOUT_S = 150  # one CLI run; the Embedder-alone process gets twice that


class GpuBusy:
    """The GPU's utilisation (nvidia-smi: the share of each 100 ms with a kernel running) over a `with` block
    that embeds and does nothing else; off (busy() is None) when `on` is false."""

    def __init__(self, on: bool) -> None:
        self.on, self.samples = on, []

    def __enter__(self) -> GpuBusy:
        if self.on:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu",
                                          "--format=csv,noheader,nounits", "-lms", "100"],
                                         stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)  # nvidia-smi's own start-up, so the first samples are the block's
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on:
            self.proc.terminate()
            out, _ = self.proc.communicate()
            self.samples = [int(line) for line in out.split() if line.strip().isdigit()]

    def busy(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def attention_kernels() -> list[tuple[str, float]]:
    """ms per call of one layer's attention, 64 cells x 1,200 tokens, 8 heads x 64, bf16, as each path calls it."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from helical_runner.packed import varlen_attn

    cells, length, heads, dim = 64, 1200, 8, 64
    q, k, v = (torch.randn(cells, heads, length, dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    bias = torch.zeros(cells, 1, 1, length, device="cuda", dtype=torch.bfloat16)  # Helical's float key mask
    packed = [t.transpose(1, 2).reshape(cells * length, heads, dim) for t in (q, k, v)]
    cu = torch.arange(0, (cells + 1) * length, length, device="cuda", dtype=torch.int32)
    calls = {"Helical's: additive float mask": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
             "packed, uniform: no mask (default backend)": lambda: F.scaled_dot_product_attention(q, k, v)}
    if varlen_attn is not None:
        calls["packed, mixed lengths: varlen_attn"] = lambda: varlen_attn(*packed, cu, cu, length, length)
    results = []
    for name, call in calls.items():
        results.append((name, timed_ms(call)))
    with contextlib.suppress(RuntimeError), sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        results.append(("packed, uniform: no mask, cuDNN", timed_ms(lambda: F.scaled_dot_product_attention(q, k, v))))
    return results


def timed_ms(call, repeats: int = 20) -> float:
    import torch

    for _ in range(3):
        call()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats


def child_embed(model_dir: Path, data: Path, naive: Path, device: str) -> None:
    """Part 1 and 3 in one process: prints one JSON line per result."""
    import anndata as ad
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from helical_runner.embed import Embedder
    from helical_runner.model import load_model
    from helical_runner.validate import map_genes

    flops = 4 * 64 * 1200 * 1200 * 512  # QK^T and AV of one layer, 64 cells
    for name, ms in attention_kernels() if device == "cuda" else ():
        print(json.dumps({"attention": name, "ms": ms, "tflops": flops / ms / 1e9}), flush=True)
    reference = np.load(naive)
    adata = ad.read_h5ad(data)
    loaded = load_model(model_dir, device)
    mapping = map_genes(data, adata.var, loaded.vocab, None)
    matrix = adata.X[:, mapping.columns].tocsr()
    for name, encoder, batch, attention, backend in ALONE_RUNS:
        try:
            started = time.perf_counter()
            embedder = Embedder(loaded, device, "bf16", batch, encoder=encoder,
                                compile_backend=backend if device == "cuda" else backend and "aot_eager")
            prefer = ([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
                      if attention == "cudnn" else None)
            with sdpa_kernel(prefer, set_priority=True) if prefer else contextlib.nullcontext():
                warm = min(1024, matrix.shape[0])
                embedder.embed_chunks([matrix[:warm]], warm, mapping.token_ids, "warm-up")  # kernels, allocator
                setup = time.perf_counter() - started
                chunks = (matrix[i:i + 2048] for i in range(0, matrix.shape[0], 2048))
                with GpuBusy(device == "cuda") as gpu:
                    started = time.perf_counter()
                    out = embedder.embed_chunks(chunks, matrix.shape[0], mapping.token_ids, "bench")
                    seconds = time.perf_counter() - started
            low, mean = cosine(out, reference)
            print(json.dumps({"alone": name, "encoder": embedder.encoder.name, "cells_per_second": out.shape[0] / seconds,
                              "gpu_busy": gpu.busy(), "setup_seconds": setup, "cos_min": low, "cos_mean": mean,
                              "timing": embedder.timing.report()}), flush=True)
        except Exception as exc:  # one variant failing (no C compiler for torch.compile...) is a result too
            print(json.dumps({"alone": name, "error": f"{type(exc).__name__}: {exc}"[:300]}), flush=True)
        finally:
            torch._dynamo.reset()  # no compiled graph carries over to the next variant


def gpu_part(work: Path, cells: int, vocab: Path, device: str = "cuda") -> None:
    """`device` cpu: the same steps with the tiny test model, to check this script before spending GPU time."""
    from helical_runner.model import SCGPT_DIMS, TINY_DIMS
    from helical_runner.test_model import write_test_model

    dims = SCGPT_DIMS if device == "cuda" else TINY_DIMS
    model_dir = write_test_model(work / "model", vocab, dims)
    tokens = json.loads((model_dir / "vocab.json").read_text())
    genes = [g for g in tokens if not g.startswith("<")][:4000]
    data = work / "raw_counts.h5ad"
    synthetic(data, cells, genes, expressed=1500)
    print(f"\n## GPU: {cells} raw-count cells, 1,500 of {len(genes)} genes expressed each (sequences at the "
          f"1,200-gene cap), {dims}, random weights, on {device}\n", flush=True)
    naive_file = work / "naive.npy"
    stdout, naive_wall, _ = run_measured([sys.executable, str(HERE), "--child-naive", str(model_dir), str(data), "24",
                                          str(naive_file), device], naive_file.with_suffix(".hwm"), CHILD_TIMEOUT_S)
    naive = json.loads(stdout.strip().splitlines()[-1])
    reference = np.load(naive_file)
    rows = [("naive Helical, fp16 autocast, batch 24", naive["cells_per_second"], naive_wall, None, None,
             cosine(reference, reference))]
    for label, encoder, precision, batch in CLI_RUNS:
        started = time.perf_counter()
        try:
            entry, _, emb, metrics = run_runner(data, model_dir, work / f"out-{encoder}-{batch}", batch, precision,
                                                device, ("--encoder", encoder), CHILD_TIMEOUT_S)
        except (SystemExit, subprocess.TimeoutExpired) as exc:
            print(f"{label}: failed ({exc})", flush=True)
            continue
        rows.append((label, entry["cells_per_second"], time.perf_counter() - started, metrics["encoder"],
                     metrics["embed_timing"], cosine(emb, reference)))
    print_cli_rows(rows, naive["cells_per_second"])
    try:
        alone = subprocess.run([sys.executable, str(HERE), "--child-embed", str(model_dir), str(data),
                                str(naive_file), device], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S * 2)
        stdout, stderr = alone.stdout, alone.stderr if alone.returncode else ""
    except subprocess.TimeoutExpired as exc:  # its rows so far still count
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = f"the Embedder-alone process ran past {CHILD_TIMEOUT_S * 2} s and was stopped\n"
    sys.stderr.write(stderr[-4000:])
    print_alone_rows([json.loads(line) for line in stdout.splitlines() if line.startswith("{")])


def split(timing: dict | None) -> str:
    if not timing:
        return f"{'':>38}"
    busy = timing["device_busy"]
    return (f"{'-' if busy is None else f'{100 * busy:.0f}':>5} {timing['host_build_seconds']:7.2f} "
            f"{timing['host_wait_seconds']:6.2f} {timing['host_launch_seconds']:7.2f} "
            f"{timing['host_readback_seconds']:5.2f} {timing['seconds']:6.2f}")


def print_cli_rows(rows: list, naive_rate: float) -> None:
    print("\n### End to end: the CLI (cells/s = metrics.json: cells / embed stage); device busy % = CUDA events; "
          "host seconds: build (beside the GPU), wait, launch, read back; embed s; process wall s\n")
    print(f"{'path':<40} {'encoder':<8} {'cells/s':>8} {'x naive':>8} {'dev%':>5} {'build':>7} {'wait':>6} "
          f"{'launch':>7} {'read':>5} {'embed':>6} {'wall s':>7} {'cos vs naive min/mean':>22}")
    for label, rate, wall, encoder, timing, (low, mean) in rows:
        print(f"{label:<40} {encoder or '-':<8} {rate:8.0f} {rate / naive_rate:8.2f} {split(timing)} {wall:7.1f} "
              f"{low:12.4f}/{mean:.4f}", flush=True)


def print_alone_rows(results: list[dict]) -> None:
    print("\n### Attention alone, one layer: 64 cells x 1,200 tokens, 8 heads x 64, bf16\n")
    for r in (r for r in results if "attention" in r):
        print(f"{r['attention']:<48} {r['ms']:7.2f} ms {r['tflops']:7.0f} TFLOP/s")
    print("\n### The Embedder alone, warmed up (setup s: Embedder + probe + 1,024-cell warm-up, compile included); "
          "GPU busy % = nvidia-smi; dev% = CUDA events\n")
    print(f"{'variant':<42} {'encoder':<8} {'cells/s':>8} {'GPU %':>6} {'dev%':>5} {'build':>7} {'wait':>6} "
          f"{'launch':>7} {'read':>5} {'embed':>6} {'setup s':>8} {'cos vs naive min/mean':>22}")
    for r in (r for r in results if "alone" in r):
        if "error" in r:
            print(f"{r['alone']:<42} failed: {r['error']}")
            continue
        busy = r["gpu_busy"]
        print(f"{r['alone']:<42} {r['encoder']:<8} {r['cells_per_second']:8.0f} "
              f"{'-' if busy is None else f'{busy:.0f}':>6} {split(r['timing'])} {r['setup_seconds']:8.1f} "
              f"{r['cos_min']:12.4f}/{r['cos_mean']:.4f}", flush=True)
