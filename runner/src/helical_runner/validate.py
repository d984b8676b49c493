"""Checks that turn bad inputs into one-line errors naming the file, the cause and the fix."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from helical_runner.config import LABEL_CANDIDATES
from helical_runner.errors import DatasetError

LOG = logging.getLogger(__name__)

# Same pattern as Helical's helical.utils.mapping (ENSG00000141510 or ENSG00000141510.17). Copied,
# not called, because Helical's ensure_gene_symbols would go on to download a mapping table.
ENSEMBL_RE = r"^ENS[A-Z]{0,4}G\d{11}(\.\d+)?$"
SYMBOL_COLUMNS = ("gene_symbols", "gene_symbol", "feature_name", "gene_name", "gene_names", "symbol", "symbols")


@dataclass
class GeneMapping:
    gene_key: str  # "index" or a var column
    columns: np.ndarray  # indices of the matrix columns that are in the vocabulary (first of duplicates)
    token_ids: np.ndarray  # their scGPT token ids, aligned with `columns`
    n_genes: int
    n_in_vocab: int  # distinct genes in the vocabulary (the reported overlap)

    @property
    def overlap(self) -> float:
        return self.n_in_vocab / self.n_genes if self.n_genes else 0.0


def _names(columns: pd.Index) -> str:
    return ", ".join(map(str, columns)) or "none"


def data_outside_the_file(file: h5py.File) -> list[str]:
    """Every place where reading `file` would read another file: an external link, a dataset stored in external
    files, a virtual dataset (its sources are other files). anndata writes none of them; a hostile file would use
    them to read other runs' outputs from the writable results folder. Names are repr()'d: one line each."""
    found: list[str] = []

    def link(name: str, target: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> None:
        if isinstance(target, h5py.ExternalLink):
            found.append(f"/{name} links to {target.filename!r}")

    def dataset(name: str, node: h5py.Group | h5py.Dataset) -> None:
        if isinstance(node, h5py.Dataset) and node.external:
            found.append(f"/{name} is stored in {', '.join(repr(entry[0]) for entry in node.external)}")
        if isinstance(node, h5py.Dataset) and node.is_virtual:
            sources = sorted({source.file_name for source in node.virtual_sources()})
            found.append(f"/{name} is a virtual dataset over {', '.join(map(repr, sources))}")

    file.visititems_links(link)  # every link, soft and external included (visititems sees hard links only)
    file.visititems(dataset)
    return found


def check_shape(path: Path, n_cells: int, n_genes: int) -> None:
    if n_cells == 0:
        raise DatasetError(f"{path}: has 0 cells; nothing to embed, remove the file or export the cells again")
    if n_genes == 0:
        raise DatasetError(f"{path}: has 0 genes; export the expression matrix with its genes (var) again")


def _identifiers(var: pd.DataFrame, key: str) -> pd.Series:
    values = var.index if key == "index" else var[key]
    return pd.Series(np.asarray(values, dtype=object), dtype=object).astype(str)


def _candidate_keys(var: pd.DataFrame) -> list[str]:
    keys = ["index"] + [c for c in SYMBOL_COLUMNS if c in var.columns]
    # Any other text column may hold symbols too (e.g. 'features'); tried last.
    keys += [c for c in var.columns if c not in keys and var[c].dtype in (object, "category", "string")]
    return keys


def map_genes(path: Path, var: pd.DataFrame, vocab: dict[str, int], gene_key: str | None) -> GeneMapping:
    """Pick the gene identifiers (GENE_KEY or the best-overlapping candidate) and map them to tokens."""
    if gene_key is not None and gene_key != "index" and gene_key not in var.columns:
        raise DatasetError(
            f"{path}: GENE_KEY={gene_key!r} is not a var column (columns: {_names(var.columns)}); "
            "set GENE_KEY to the column with gene symbols, or 'index'"
        )
    keys = [gene_key] if gene_key is not None else _candidate_keys(var)
    best_key, best_ids, best_hits = keys[0], _identifiers(var, keys[0]), -1
    for key in keys:
        ids = _identifiers(var, key)
        hits = int(ids.isin(vocab.keys()).sum())
        if hits > best_hits:
            best_key, best_ids, best_hits = key, ids, hits
    n_genes = len(var)
    if best_hits <= 0:
        ensembl = best_ids.str.match(ENSEMBL_RE).mean() if n_genes else 0.0
        if ensembl > 0.5:
            raise DatasetError(
                f"{path}: genes are Ensembl IDs (e.g. {best_ids.iloc[0]}) and no var column holds gene symbols; "
                "scGPT's vocabulary is keyed on symbols and the runner never looks them up over the network, "
                "so add a symbol column (e.g. var['gene_symbols']) and set GENE_KEY to it"
            )
        example = ", ".join(best_ids.iloc[:3])
        raise DatasetError(
            f"{path}: 0 of {n_genes} genes ({example}, ...) are in the model vocabulary ({len(vocab)} tokens); "
            "use human gene symbols, or set GENE_KEY to the var column that holds them"
        )
    in_vocab = best_ids.isin(vocab.keys()).to_numpy()
    # A repeated symbol would feed scGPT the same gene token twice; keep its first column.
    first = ~best_ids.duplicated(keep="first").to_numpy()
    columns = np.flatnonzero(in_vocab & first)
    if (in_vocab & ~first).any():
        LOG.warning("%s: %d duplicated gene symbols; using the first column of each", path.name,
                    int((in_vocab & ~first).sum()))
    token_ids = np.array([vocab[g] for g in best_ids.iloc[columns]], dtype=np.int64)
    mapping = GeneMapping(best_key, columns, token_ids, n_genes, len(columns))
    LOG.info(
        "%s: %d of %d genes (%.1f%%) are in the model vocabulary (gene key: %s)",
        path.name, mapping.n_in_vocab, n_genes, 100 * mapping.overlap, best_key,
    )
    return mapping


def find_label_key(path: Path, obs: pd.DataFrame, label_key: str | None, classifier: str) -> str | None:
    """LABEL_KEY when set, else the first known label column; None when there are no labels."""
    if label_key is not None:
        if label_key not in obs.columns:
            raise DatasetError(
                f"{path}: LABEL_KEY={label_key!r} is not an obs column (columns: {_names(obs.columns)}); "
                "set LABEL_KEY to the column with cell labels, or unset it"
            )
        return label_key
    found = next((c for c in LABEL_CANDIDATES if c in obs.columns), None)
    if found is None and classifier == "on":
        raise DatasetError(
            f"{path}: CLASSIFIER=on but no label column was found (looked for {', '.join(LABEL_CANDIDATES)}); "
            "set LABEL_KEY to the obs column with cell labels, or set CLASSIFIER=auto|off"
        )
    return found
