"""scGPT input batches straight from CSR rows, equal to Helical's `Dataset` + `DataCollator`, many times faster.

Helical builds each cell on its own: a dense row, `np.insert` of <cls>, a fresh random generator, quantiles, two
`np.digitize`, a seeded `torch.randperm`, then one tensor per cell to stack. On a GPU that CPU work, not the
model, set the pace (docs/benchmarks/). Both of Helical's random steps are seeded on every call, so they depend
on a cell's gene count alone, and are computed once per count here:
- binning (`helical.models.scgpt.binning`) breaks ties between equal bin edges with
  `np.random.default_rng(42).random(n)`: the first n numbers of one stream;
- sampling (a cell with more genes than MAX_LENGTH - 1) keeps <cls> and
  `torch.randperm(n, generator=torch.Generator().manual_seed(0))[:MAX_LENGTH - 1]` of the genes.
runner/tests checks the batches equal Helical's, tensor for tensor.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

N_BINS = 51  # DataCollator calls binning(row, n_bins=51)
QUANTILES = np.linspace(0, 1, N_BINS - 1)


# A cell has at most one value per gene of the vocabulary (~60,000): one stream covers every cell.
_TIES = np.random.default_rng(42).random(1 << 16)


def tie_breaks(n: int) -> np.ndarray:
    """np.random.default_rng(42).random(n): a stream's first n numbers."""
    return _TIES[:n] if n <= _TIES.size else np.random.default_rng(42).random(n)


@lru_cache(maxsize=4096)
def sampled_positions(n_genes: int, keep: int) -> np.ndarray:
    """Which of a cell's n_genes genes DataCollator._sample keeps (<cls> aside), in its order."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randperm(n_genes, generator=generator)[:keep].numpy()


def bin_expression(values: np.ndarray) -> np.ndarray:
    """helical.models.scgpt.binning.binning(values, 51) for the non-zero values of one cell (float32)."""
    bins = np.quantile(values, QUANTILES)
    left = np.digitize(values, bins)
    right = np.digitize(values, bins, right=True)
    return np.ceil(tie_breaks(values.size) * (right - left) + left)


class BatchBuilder:
    """(genes, expr) arrays of a batch of cells, as `DataCollator(do_binning, sampling, keep_first_n_tokens=1)`
    returns them for `Dataset(matrix, token_ids, ...)[i]` of each cell."""

    def __init__(self, cls_id: int, pad_id: int, pad_value: float, max_length: int) -> None:
        self.cls_id, self.pad_id, self.pad_value, self.max_length = cls_id, pad_id, pad_value, max_length

    def build(self, matrix: sp.csr_matrix, token_ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of a CSR matrix with sorted indices and no stored zeros; at least one gene per row."""
        starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
        width = min(int((ends - starts).max()) + 1, self.max_length)
        genes = np.full((rows.size, width), self.pad_id, dtype=np.int64)
        expr = np.full((rows.size, width), self.pad_value, dtype=np.float32)
        genes[:, 0] = self.cls_id
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            cell_genes = token_ids[matrix.indices[start:end]]
            binned = bin_expression(matrix.data[start:end].astype(np.float32))
            if cell_genes.size >= self.max_length:
                keep = sampled_positions(cell_genes.size, self.max_length - 1)
                cell_genes, binned = cell_genes[keep], binned[keep]
            genes[i, 1:cell_genes.size + 1] = cell_genes
            expr[i, 1:cell_genes.size + 1] = binned
        return genes, expr
