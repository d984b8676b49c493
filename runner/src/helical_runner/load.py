"""Streamed reading of .h5ad files: metadata up front, expression rows one chunk at a time.

The file is opened with h5py and only `obs`, `var` and the chosen matrix are touched; `obsp`,
`layers` other than counts, `uns` etc. are never loaded. (anndata's `read_h5ad(backed="r")` backs only
`X` and reads every layer into memory, which defeats streaming when the counts live in a layer.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem, sparse_dataset

from helical_runner.errors import DatasetError
from helical_runner.validate import data_outside_the_file

LOG = logging.getLogger(__name__)

# Rows sampled to decide whether a matrix holds raw integer counts: enough to catch normalised
# data (any non-integer), small enough to be instant on a 1M-cell file.
SAMPLE_ROWS = 500

# (HDF5 path of the matrix, HDF5 path of its var table), in order of preference: raw counts first.
MATRIX_CANDIDATES = (("layers/counts", "var"), ("X", "var"), ("raw/X", "raw/var"))


@dataclass
class MatrixChoice:
    path: str  # "layers/counts" | "X" | "raw/X"
    var_path: str
    raw_counts: bool  # False: log-normalised (non-negative, non-integer) values


class H5adReader:
    """An open .h5ad file; use as a context manager so the HDF5 handle is always closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise DatasetError(f"{path}: file not found; check DATA_DIR and the mount")
        if not h5py.is_hdf5(path):
            raise DatasetError(
                f"{path}: not an HDF5/h5ad file (a .h5ad must be written by anndata's write_h5ad); "
                "re-export it with adata.write_h5ad() or remove it from DATA_DIR"
            )
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise DatasetError(
                f"{path}: cannot open as HDF5 ({exc}); the file is corrupt or truncated, copy it again"
            ) from None
        self._refuse_data_outside_the_file()
        self.matrix: MatrixChoice | None = None
        self._ds: object | None = None

    def _refuse_data_outside_the_file(self) -> None:
        """Before anything is read: a file that points elsewhere is refused whole (docs/security.md)."""
        try:
            found = data_outside_the_file(self.file)
        except (OSError, RuntimeError, ValueError) as exc:
            self.close()
            raise DatasetError(f"{self.path}: cannot list its contents ({exc}); the file is corrupt, copy it "
                               "again") from None
        if found:
            self.close()
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            raise DatasetError(
                f"{self.path}: reads data from outside the file ({'; '.join(found[:3])}{more}); the runner takes "
                "self-contained .h5ad files only: re-save it with anndata (anndata.read_h5ad(path).write_h5ad(new_path) "
                "copies the data in), or remove it from DATA_DIR"
            )

    def __enter__(self) -> H5adReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "file", None) is not None:
            self.file.close()
            self.file = None

    def _read_frame(self, key: str) -> pd.DataFrame:
        if key not in self.file:
            raise DatasetError(f"{self.path}: has no '{key}' table; it is not an AnnData file, re-save it with anndata")
        try:
            frame = read_elem(self.file[key])
        except Exception as exc:
            raise DatasetError(
                f"{self.path}: cannot read '{key}' ({type(exc).__name__}: {exc}); "
                "re-save the file with a current anndata (adata.write_h5ad)"
            ) from None
        if not isinstance(frame, pd.DataFrame):
            raise DatasetError(f"{self.path}: '{key}' is not a table; re-save the file with a current anndata")
        return frame

    def obs(self) -> pd.DataFrame:
        return self._read_frame("obs")

    def var(self) -> pd.DataFrame:
        assert self.matrix is not None, "choose_matrix() first"
        return self._read_frame(self.matrix.var_path)

    def _element(self, key: str) -> object:
        node = self.file[key]
        if isinstance(node, h5py.Dataset):
            return node  # dense matrix: h5py slices rows directly from disk
        encoding = node.attrs.get("encoding-type", node.attrs.get("h5sparse_format", ""))
        if isinstance(encoding, bytes):
            encoding = encoding.decode()
        if "csc" in str(encoding):
            LOG.warning("%s: '%s' is stored column-major (CSC); row reads will be slow", self.path, key)
        return sparse_dataset(node)

    def shape_of(self, key: str) -> tuple[int, int]:
        return tuple(int(n) for n in self._element(key).shape)  # type: ignore[attr-defined]

    def choose_matrix(self) -> MatrixChoice:
        """Prefer raw integer counts (layers['counts'], X, raw.X); else accept log-normalised values.

        Helical's scGPT bins each cell's values by its own quantiles, so log-normalised input (a
        monotone transform of counts within a cell) bins like counts; it only needs Helical's
        `use_raw_counts=False`. Scaled data (negative values, e.g. pbmc68k_reduced's X) cannot be
        binned that way and is skipped in favour of `.raw`.
        """
        present = [(m, v) for m, v in MATRIX_CANDIDATES if m in self.file]
        if not present:
            raise DatasetError(
                f"{self.path}: no expression matrix (X, layers/counts or raw/X); re-save it with anndata"
            )
        from helical_runner.validate import check_shape

        # Zero cells or genes is the clearer message than "no usable values" for an empty matrix.
        check_shape(self.path, *self.shape_of(present[0][0] if present[0][0] != "layers/counts" else "X"))
        kinds: dict[str, str] = {}
        for matrix_path, _ in present:
            kinds[matrix_path] = self._value_kind(matrix_path)
        for wanted in ("counts", "lognorm"):
            for matrix_path, var_path in present:
                if kinds[matrix_path] == wanted:
                    self.matrix = MatrixChoice(matrix_path, var_path, raw_counts=wanted == "counts")
                    self._ds = self._element(matrix_path)
                    LOG.info(
                        "%s: using %s (%s)", self.path.name, matrix_path,
                        "raw integer counts" if wanted == "counts" else "log-normalised values, use_raw_counts=False",
                    )
                    return self.matrix
        found = ", ".join(f"{m}: {k}" for m, k in kinds.items())
        raise DatasetError(
            f"{self.path}: no usable expression values ({found}); scGPT needs raw counts or log-normalised "
            "values, so store counts in layers['counts'] or keep unscaled data in .raw before scaling"
        )

    def _value_kind(self, key: str) -> str:
        rows, cols = self.shape_of(key)
        if rows == 0 or cols == 0:
            return "empty"
        block = self._read_block(self._element(key), 0, min(rows, SAMPLE_ROWS))
        values = block.data if sp.issparse(block) else np.asarray(block).ravel()
        if values.size == 0:
            return "all-zero"
        if not np.all(np.isfinite(values)) or values.min() < 0:
            return "scaled (negative or non-finite values)"
        return "counts" if np.all(np.mod(values, 1) == 0) else "lognorm"

    @staticmethod
    def _read_block(element: object, start: int, stop: int) -> sp.csr_matrix | np.ndarray:
        return element[start:stop]  # type: ignore[index]

    def iter_rows(self, rows: np.ndarray, columns: np.ndarray, chunk_cells: int) -> Iterator[sp.csr_matrix]:
        """`rows` of the chosen matrix, `chunk_cells` at a time, restricted to `columns`: memory stays bounded."""
        for lo in range(0, rows.size, chunk_cells):
            yield self.read_rows(rows[lo:lo + chunk_cells])[:, columns]

    def read_rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """Rows (sorted ascending) of the chosen matrix as CSR, reading one contiguous block when dense enough."""
        assert self._ds is not None and rows.size > 0
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if hi - lo <= 4 * rows.size:
            # A contiguous read is one HDF5 request; picking rows afterwards is cheap in memory.
            block = self._read_block(self._ds, lo, hi)
            block = sp.csr_matrix(block) if not sp.issparse(block) else block.tocsr()
            return block[rows - lo]
        block = self._ds[rows]  # type: ignore[index]
        return sp.csr_matrix(block) if not sp.issparse(block) else block.tocsr()
