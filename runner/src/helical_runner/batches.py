"""scGPT input batches straight from CSR rows, equal to Helical's `Dataset` + `DataCollator`, many times faster.

Helical builds each cell on its own: a dense row, `np.insert` of <cls>, a fresh random generator, quantiles, two
`np.digitize`, a seeded `torch.randperm`, then one tensor per cell to stack. On a GPU that CPU work, not the
model, set the pace (docs/benchmarks/). Both of Helical's random steps are seeded on every call, so they depend
on a cell's gene count alone, and are computed once per count here:
- binning (`helical.models.scgpt.binning`) breaks ties between equal bin edges with
  `np.random.default_rng(42).random(n)`: the first n numbers of one stream;
- sampling (a cell with more genes than MAX_LENGTH - 1) keeps <cls> and
  `torch.randperm(n, generator=torch.Generator().manual_seed(0))[:MAX_LENGTH - 1]` of the genes.
Cells with the same gene count are binned together, one `np.quantile` over their rows (numpy computes each row
as it would alone). Two layouts: padded (cells x longest cell, what Helical's model takes) and packed (the
cells' tokens one after another, what the packed encoder takes). runner/tests checks both equal Helical's,
tensor for tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """helical.models.scgpt.binning.binning(row, 51) of each row: cells x their n non-zero values (float32)."""
    bins = np.quantile(values, QUANTILES, axis=1).T  # each row's quantiles, computed as for that row alone
    left = np.stack([np.digitize(row, edges) for row, edges in zip(values, bins, strict=True)])
    right = np.stack([np.digitize(row, edges, right=True) for row, edges in zip(values, bins, strict=True)])
    return np.ceil(tie_breaks(values.shape[1]) * (right - left) + left)


@dataclass(frozen=True)
class Packed:
    """A batch's tokens, cell after cell: each cell's <cls> and then its (sampled) genes."""

    genes: np.ndarray  # (tokens,) int64
    expr: np.ndarray  # (tokens,) float32, pad_value at each <cls>
    lengths: np.ndarray  # (cells,) tokens per cell, <cls> included

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]])

    def cell_and_position(self) -> tuple[np.ndarray, np.ndarray]:
        """For every token: the cell it belongs to and its position within that cell."""
        cell = np.repeat(np.arange(self.lengths.size), self.lengths)
        return cell, np.arange(cell.size) - np.repeat(self.starts, self.lengths)


class BatchBuilder:
    """A batch of cells as `DataCollator(do_binning, sampling, keep_first_n_tokens=1)` returns them for
    `Dataset(matrix, token_ids, ...)[i]` of each cell (padded), or the same tokens without padding (packed)."""

    def __init__(self, cls_id: int, pad_id: int, pad_value: float, max_length: int) -> None:
        self.cls_id, self.pad_id, self.pad_value, self.max_length = cls_id, pad_id, pad_value, max_length

    def tokens_per_cell(self, genes_per_cell: np.ndarray) -> np.ndarray:
        """<cls> plus the genes a cell keeps (at most MAX_LENGTH - 1 of them)."""
        return np.minimum(genes_per_cell, self.max_length - 1) + 1

    def packed(self, matrix: sp.csr_matrix, token_ids: np.ndarray, rows: np.ndarray) -> Packed:
        """Rows of a CSR matrix with sorted indices and no stored zeros; at least one gene per row."""
        starts, counts = matrix.indptr[rows], np.diff(matrix.indptr)[rows]
        lengths = self.tokens_per_cell(counts)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        genes = np.empty(int(lengths.sum()), dtype=np.int64)
        expr = np.empty(genes.size, dtype=np.float32)
        genes[first], expr[first] = self.cls_id, self.pad_value
        for n in np.unique(counts):
            cells = np.flatnonzero(counts == n)
            where = starts[cells, None] + np.arange(n)  # (cells, n): their entries in the CSR arrays
            cell_genes = token_ids[matrix.indices[where]]
            binned = bin_expression(matrix.data[where].astype(np.float32))
            if n >= self.max_length:
                keep = sampled_positions(int(n), self.max_length - 1)
                cell_genes, binned = cell_genes[:, keep], binned[:, keep]
            to = first[cells, None] + 1 + np.arange(cell_genes.shape[1])
            genes[to], expr[to] = cell_genes, binned
        return Packed(genes, expr, lengths)

    def build(self, matrix: sp.csr_matrix, token_ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(genes, expr), cells x the longest cell's tokens, padded with the pad token and pad value."""
        batch = self.packed(matrix, token_ids, rows)
        cell, position = batch.cell_and_position()
        genes = np.full((rows.size, int(batch.lengths.max())), self.pad_id, dtype=np.int64)
        expr = np.full(genes.shape, self.pad_value, dtype=np.float32)
        genes[cell, position], expr[cell, position] = batch.genes, batch.expr
        return genes, expr


def token_batches(order: np.ndarray, tokens: np.ndarray, budget: int) -> list[np.ndarray]:
    """`order` cut into consecutive batches of at most `budget` tokens (`tokens[i]`: cell i's), each at least
    one cell."""
    cumulative = np.cumsum(tokens[order])
    batches, start = [], 0
    while start < order.size:
        before = cumulative[start - 1] if start else 0
        end = max(int(np.searchsorted(cumulative, before + budget, side="right")), start + 1)
        batches.append(order[start:end])
        start = end
    return batches
