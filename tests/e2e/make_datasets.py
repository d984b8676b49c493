"""Write the e2e datasets into the folder given (run inside the runner image, which has scanpy/anndata).

Three small, real-gene datasets: two slices of scanpy's bundled pbmc68k_reduced (log-normalised, labelled
bulk_labels) and one raw-counts dataset drawn from a negative binomial on its genes with a cell_type column.
With `--big N`: only big.h5ad, N cells (pbmc68k_reduced's first 200, repeated), for the chaos suite.
With `--many N CELLS`: only small_00.h5ad ... (N files of CELLS cells each, slices of pbmc68k_reduced), for the
packing benchmark (docs/benchmarks/README.md).
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
pbmc = sc.datasets.pbmc68k_reduced()
base = ad.AnnData(X=pbmc.raw.X.copy(), obs=pbmc.obs[["bulk_labels"]].copy(), var=pbmc.raw.var[[]].copy())
if sys.argv[2:3] == ["--big"]:
    n_cells = int(sys.argv[3])
    big = ad.concat([base[:200]] * (n_cells // 200))
    big.obs_names = [f"cell{i}" for i in range(big.n_obs)]
    big.write_h5ad(out / "big.h5ad")
    print(f"wrote big.h5ad ({big.n_obs} cells) to {out}")
    sys.exit(0)
if sys.argv[2:3] == ["--many"]:
    count, cells = int(sys.argv[3]), int(sys.argv[4])
    for i in range(count):
        start = (i * 37) % (base.n_obs - cells)
        base[start:start + cells].copy().write_h5ad(out / f"small_{i:02d}.h5ad")
    print(f"wrote {count} datasets of {cells} cells to {out}")
    sys.exit(0)
base[:120].copy().write_h5ad(out / "pbmc_part_a.h5ad")
base[120:240].copy().write_h5ad(out / "pbmc_part_b.h5ad")

rng = np.random.default_rng(0)
n_cells, n_genes = 150, base.n_vars
counts = rng.negative_binomial(2, 0.3, size=(n_cells, n_genes)).astype(np.float32)
labels = np.array(["T cell", "B cell", "NK cell"])[rng.integers(0, 3, n_cells)]
raw = ad.AnnData(X=counts, var=base.var.copy())
raw.obs["cell_type"] = labels
raw.obs_names = [f"cell{i}" for i in range(n_cells)]
raw.write_h5ad(out / "synthetic_counts.h5ad")
print(f"wrote 3 datasets to {out}")
