"""Benchmark: helical-runner vs the naive Helical path, and peak memory as datasets grow.

Run by `make bench-runner` (not a test). Prints to stdout; commit the output under docs/benchmarks/.

Part 1, speed at real scGPT dims (embsize 512, 12 layers, 8 heads, d_hid 512, the full 60,697-token
vocabulary, random weights, built by `helical-runner test-model`) on the same cells (scanpy's
pbmc68k_reduced, log-normalised):
  naive      what the original runner did: scGPT(configurer=scGPTConfig(batch_size=B)), process_data and
             get_embeddings on the whole AnnData (file downloads disabled, the files are present);
  runner     `helical-runner` as shipped (PRECISION=auto);
  runner-fp32 the runner with bf16 off, to separate the levers (length-sorted batches vs bf16);
  runner-packed the runner with ENCODER=packed (Helical's modules on packed tokens; auto keeps it for CUDA);
  reference  naive with batch_size=1: Helical's own embedding with no padding, which is what the runner
             computes at any batch size (it leaves padding out of the mean; Helical averages it in).
Each path runs in its own process and reports its own peak RSS (VmHWM, which exec resets; wait4's
ru_maxrss would include the benchmark parent's memory, which Linux carries across fork+exec).

Part 2, memory: peak RSS of the runner at N and 10*N synthetic cells with the tiny test model (target:
ratio <= 1.3, i.e. memory does not grow with the number of cells beyond the outputs themselves).

`--device cuda` (on a GPU machine; ../shared/gpu-bench/README.md without Docker) measures the GPU case instead:
bench_gpu.py says what.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_VOCAB = HERE.parents[2].parent / "shared" / "scgpt-vocab" / "default_census_vocab.json"


def machine() -> dict[str, object]:
    import torch

    from helical_runner.config import cpu_has_native_bf16
    from helical_runner.embed import configure_threads

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    return {"cpu": model, "cores_available": len(os.sched_getaffinity(0)), "torch_threads": configure_threads(),
            "bf16_native": cpu_has_native_bf16(), "amx": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def peak_rss_mib() -> float:
    """This process's own high-water RSS (VmHWM). Unlike wait4's ru_maxrss it is reset by exec, so a
    child does not inherit the benchmark parent's peak (Linux keeps ru_maxrss across fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_measured(hwm_file: Path, module_args: list[str]) -> None:
    """Run `python -m helical_runner.cli ...` in this process and record its peak RSS at exit."""
    import atexit
    import runpy

    atexit.register(lambda: hwm_file.write_text(str(peak_rss_mib())))
    sys.argv = ["helical-runner", *module_args]
    try:
        runpy.run_module("helical_runner.cli", run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def run_measured(cmd: list[str], hwm_file: Path, timeout: float | None = None) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS MiB) of a child process that writes its VmHWM to hwm_file."""
    started = time.perf_counter()
    hwm_file.unlink(missing_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark step failed: {' '.join(cmd)}")
    return proc.stdout, wall, float(hwm_file.read_text())


def child_naive(model_dir: Path, data: Path, batch_size: int, out: Path, device: str = "cpu") -> None:
    """The original runner's path, in this (child) process."""
    import anndata as ad
    import torch
    from helical.models.scgpt import scGPT, scGPTConfig

    from helical_runner.embed import configure_threads
    from helical_runner.model import read_dims

    configure_threads()
    dims, _ = read_dims(model_dir)
    config = scGPTConfig(batch_size=batch_size, device=device, embsize=dims.embsize, nlayers=dims.nlayers,
                         nheads=dims.nheads, d_hid=dims.d_hid)
    config.config["model_path"] = model_dir / "best_model.pt"
    config.config["list_of_files_to_download"] = []  # offline: the files are present
    model = scGPT(configurer=config)
    adata = ad.read_h5ad(data)
    started = time.perf_counter()
    # Raw counts (the GPU case) are checked as such; pbmc68k_reduced's values are log-normalised.
    dataset = model.process_data(adata, use_raw_counts=device == "cuda")
    from bench_gpu import GpuBusy

    with torch.inference_mode(), GpuBusy(device == "cuda") as gpu:
        embeddings = model.get_embeddings(dataset)
    seconds = time.perf_counter() - started
    np.save(out, np.asarray(embeddings, dtype=np.float32))
    out.with_suffix(".hwm").write_text(str(peak_rss_mib()))
    print(json.dumps({"cells": int(adata.n_obs), "seconds": seconds, "cells_per_second": adata.n_obs / seconds,
                      "gpu_busy": gpu.busy()}))


def runner_cmd(data: Path, model_dir: Path, out_dir: Path, batch_size: int, precision: str, hwm: Path,
               device: str = "cpu", extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(HERE), "--child-measured", str(hwm),
            "--data", str(data), "--model-dir", str(model_dir),
            "--output-dir", str(out_dir), "--batch-size", str(batch_size), "--classifier", "off",
            "--precision", precision, "--device", device, *extra]


def run_runner(data: Path, model_dir: Path, out_dir: Path, batch_size: int, precision: str, device: str = "cpu",
               extra: tuple[str, ...] = (), timeout: float | None = None) -> tuple[dict, float, np.ndarray, dict]:
    """The runner's CLI in its own process: (summary entry, peak RSS MiB, embeddings, metrics.json)."""
    import anndata as ad

    hwm = out_dir.with_suffix(".hwm")
    stdout, _, rss = run_measured(runner_cmd(data, model_dir, out_dir, batch_size, precision, hwm, device, extra),
                                  hwm, timeout)
    summary = json.loads(stdout.strip().splitlines()[-1])
    entry = summary["datasets"][0]
    embeddings = ad.read_h5ad(Path(entry["output_dir"]) / "embeddings.h5ad").obsm["X_scgpt"]
    metrics = json.loads((Path(entry["output_dir"]) / "metrics.json").read_text())
    return entry, rss, embeddings, metrics


def cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(c.min()), float(c.mean())


def speed_part(work: Path, cells: int, batch_size: int, vocab: Path) -> None:
    import scanpy as sc

    from helical_runner.model import SCGPT_DIMS as REAL
    from helical_runner.test_model import write_test_model

    model_dir = write_test_model(work / "model-real", vocab, REAL)
    demo = sc.datasets.pbmc68k_reduced()
    adata = demo.raw.to_adata()[:cells].copy()  # log-normalised values of the first cells
    adata.obs = demo.obs.iloc[:cells].copy()
    data = work / "pbmc_cells.h5ad"
    adata.write_h5ad(data)
    nnz = np.diff(adata.X.indptr)
    print(f"\n## Speed at real scGPT dims ({REAL}, vocab {len(json.loads((model_dir / 'vocab.json').read_text()))}"
          f" tokens, random weights)\n{cells} cells of pbmc68k_reduced, genes per cell: median {int(np.median(nnz))}, "
          f"max {nnz.max()}; batch size {batch_size}\n")
    results = {}
    for name, bs in (("naive", batch_size), ("reference", 1)):
        out = work / f"{name}.npy"
        stdout, _, rss = run_measured([sys.executable, str(HERE), "--child-naive", str(model_dir), str(data),
                                       str(bs), str(out)], out.with_suffix(".hwm"))
        results[name] = (json.loads(stdout.strip().splitlines()[-1])["cells_per_second"], rss, np.load(out))
    for name, precision, extra in (("runner", "auto", ()), ("runner-fp32", "fp32", ()),
                                   ("runner-packed", "auto", ("--encoder", "packed"))):
        entry, rss, emb, _ = run_runner(data, model_dir, work / f"out-{name}", batch_size, precision, "cpu", extra)
        results[name] = (entry["cells_per_second"], rss, emb)
    naive_rate, naive_rss, naive_emb = results["naive"]
    ref_emb = results["reference"][2]
    print(f"{'path':<12} {'cells/s':>8} {'x naive':>8} {'peak RSS MiB':>13} {'RSS x naive':>12} "
          f"{'cos vs naive min/mean':>22} {'cos vs bs=1 min/mean':>21}")
    for name, (rate, rss, emb) in results.items():
        vs_naive, vs_ref = cosine(emb, naive_emb), cosine(emb, ref_emb)
        print(f"{name:<12} {rate:8.2f} {rate / naive_rate:8.2f} {rss:13.0f} {rss / naive_rss:12.2f} "
              f"{vs_naive[0]:10.4f}/{vs_naive[1]:.4f} {vs_ref[0]:10.4f}/{vs_ref[1]:.4f}")


def synthetic(path: Path, n_cells: int, genes: list[str], seed: int = 0, expressed: int | None = None) -> None:
    """Raw counts (Poisson + 1), written in one go (the parent's memory is not measured): ~15% of the genes
    expressed per cell, or exactly `expressed` genes per cell, chosen at random."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    if expressed is None:
        matrix = sp.random(n_cells, len(genes), density=0.15, format="csr", random_state=rng, dtype=np.float32)
    else:
        cols = np.concatenate([rng.choice(len(genes), expressed, replace=False) for _ in range(n_cells)])
        matrix = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), cols, np.arange(n_cells + 1) * expressed),
                               shape=(n_cells, len(genes)))
        matrix.sort_indices()
    matrix.data = rng.poisson(2.0, size=matrix.data.size).astype(np.float32) + 1
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["A", "B", "C"], n_cells))},
                       index=[f"c{i}" for i in range(n_cells)])
    ad.AnnData(X=matrix, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)


def memory_part(work: Path, small: int, batch_size: int) -> None:
    from helical_runner.test_model import builtin_genes, write_test_model

    model_dir = write_test_model(work / "model-tiny")
    print(f"\n## Peak RSS vs cells (tiny test model, synthetic raw counts, {len(builtin_genes())} genes)\n")
    rows = []
    for n in (small, small * 10):
        data = work / f"synthetic_{n}.h5ad"
        synthetic(data, n, builtin_genes())
        entry, rss, emb, _ = run_runner(data, model_dir, work / f"out-mem-{n}", batch_size, "auto")
        assert emb.shape[0] == n
        rows.append((n, rss, entry["cells_per_second"]))
        print(f"{n:>8} cells: peak RSS {rss:8.0f} MiB, {entry['cells_per_second']:.0f} cells/s")
    print(f"ratio peak RSS {rows[1][0]} / {rows[0][0]} cells: {rows[1][1] / rows[0][1]:.2f} (target <= 1.3)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-naive":
        model_dir, data, bs, out = sys.argv[2:6]
        child_naive(Path(model_dir), Path(data), int(bs), Path(out), *sys.argv[6:7])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child-embed":
        from bench_gpu import child_embed

        model_dir, data, naive, device = sys.argv[2:6]
        child_embed(Path(model_dir), Path(data), Path(naive), device)
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--child-measured":
        child_measured(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: the GPU case instead of the CPU speed and memory parts")
    parser.add_argument("--cells", type=int, help="cells for the speed part (default 300 on cpu, 8000 on cuda)")
    parser.add_argument("--batch-size", type=int, default=24, help="both paths (Helical's default)")
    parser.add_argument("--memory-cells", type=int, default=10_000, help="memory part: this and 10x as many")
    parser.add_argument("--vocab", type=Path, default=Path(os.environ.get("HELICAL_TEST_VOCAB", DEFAULT_VOCAB)),
                        help="scGPT's default_census_vocab.json, for the full vocabulary size")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --device cuda: its steps on the CPU with the tiny model, to check the script")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    print("# helical-runner benchmark\n")
    print("machine: " + json.dumps(machine()))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.device == "cuda":
            from bench_gpu import gpu_part

            gpu_part(work, args.cells or (300 if args.dry_run else 8000), args.vocab, "cpu" if args.dry_run else "cuda")
            return
        if not args.skip_speed:
            speed_part(work, args.cells or 300, args.batch_size, args.vocab)
        if not args.skip_memory:
            memory_part(work, args.memory_cells, 64)


if __name__ == "__main__":
    main()
