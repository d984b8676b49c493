"""MAX_CELLS: a seeded subsample of cells, stratified by label. Genes are never dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

SEED = 0


def choose_cells(n_cells: int, max_cells: int, labels: pd.Series | None = None, seed: int = SEED) -> np.ndarray:
    """Sorted row indices to embed: all when max_cells is 0 or not below n_cells.

    With labels, each class gets its proportional share (largest remainder) and at least one cell while
    the budget allows; cells without a label form a class of their own.
    """
    if max_cells <= 0 or max_cells >= n_cells:
        return np.arange(n_cells)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n_cells, size=max_cells, replace=False))

    named = labels.astype(object).where(labels.notna(), "<missing>")
    codes = pd.Series(pd.Categorical(named)).cat.codes.to_numpy()
    classes, counts = np.unique(codes, return_counts=True)
    exact = counts * max_cells / n_cells
    quota = np.floor(exact).astype(int)
    # Largest remainder: the leftover budget goes to the classes closest to their next cell.
    quota[np.argsort(-(exact - quota), kind="stable")[: max_cells - quota.sum()]] += 1
    # A class rounded down to zero takes one cell from the largest class, while that one keeps >= 1,
    # so rare cell types survive subsampling.
    for i in np.argsort(-counts, kind="stable"):
        donor = int(np.argmax(quota))
        if quota[i] == 0 and quota[donor] > 1:
            quota[i], quota[donor] = 1, quota[donor] - 1
    picked = [rng.choice(np.flatnonzero(codes == c), size=q, replace=False)
              for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picked))
