"""batches.py builds the tensors Helical's Dataset + DataCollator build, equal to the last bit; prefetched()."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helical.models.scgpt.data_collator import DataCollator
from helical.models.scgpt.dataset import Dataset

from helical_runner.batches import BatchBuilder, tie_breaks, token_batches
from helical_runner.embed import prefetched

PAD, CLS, PAD_VALUE, MAX_LENGTH = 0, 1, -2, 1200


def cells(kind: str, n_genes: int = 3000) -> sp.csr_matrix:
    """Cells from 1 to 2,500 expressed genes (so both padding and Helical's sampling happen), with many ties;
    some cells share a gene count (binned together)."""
    rng = np.random.default_rng(7)
    rows = []
    for n in (1, 2, 50, 51, 600, 1198, 1199, 1200, 1201, 2500, 1500, 7, 50, 1500, 1500, 7, 1):
        values = np.zeros(n_genes, dtype=np.float32)
        where = rng.choice(n_genes, n, replace=False)
        values[where] = (rng.integers(1, 6, n) if kind == "counts" else rng.lognormal(0, 1, n)).astype(np.float32)
        rows.append(values)
    return sp.csr_matrix(np.vstack(rows))


@pytest.mark.parametrize("kind", ["counts", "normalised"])
def test_batches_equal_helicals(kind: str) -> None:
    matrix = cells(kind)
    token_ids = np.random.default_rng(3).permutation(matrix.shape[1]) + 10
    vocab = {"<pad>": PAD, "<cls>": CLS}
    dataset = Dataset(matrix, token_ids, vocab, {"pad_value": PAD_VALUE})
    collator = DataCollator(do_padding=True, pad_token_id=PAD, pad_value=PAD_VALUE, do_mlm=False, do_binning=True,
                            max_length=MAX_LENGTH, sampling=True, keep_first_n_tokens=1)
    builder = BatchBuilder(cls_id=CLS, pad_id=PAD, pad_value=PAD_VALUE, max_length=MAX_LENGTH)
    for rows in (np.arange(matrix.shape[0]), np.array([0, 1, 11]), np.array([9, 10]), np.array([10, 13, 14, 2])):
        expected = collator([dataset[int(i)] for i in rows])
        genes, expr = builder.build(matrix, token_ids, rows)
        assert torch.equal(torch.from_numpy(genes), expected["gene"])
        assert torch.equal(torch.from_numpy(expr), expected["expr"])
        # Packed: the same tokens, cell after cell, without the padding.
        packed = builder.packed(matrix, token_ids, rows)
        real = expected["gene"] != PAD
        assert np.array_equal(packed.lengths, real.sum(1).numpy())
        assert torch.equal(torch.from_numpy(packed.genes), expected["gene"][real])
        assert torch.equal(torch.from_numpy(packed.expr), expected["expr"][real])


def test_token_batches_cut_the_order_at_the_budget() -> None:
    order = np.array([4, 0, 2, 1, 3, 5])
    tokens = np.array([5, 3, 4, 9, 2, 1])
    assert [b.tolist() for b in token_batches(order, tokens, 7)] == [[4, 0], [2, 1], [3], [5]]  # 9 > 7: alone
    assert [b.tolist() for b in token_batches(order, tokens, 100)] == [order.tolist()]
    assert token_batches(order[:0], tokens, 6) == []


def test_tie_breaks_are_a_prefix_of_one_stream() -> None:
    for n in (1, 5, 1200, 70_000):
        assert np.array_equal(tie_breaks(n), np.random.default_rng(42).random(n))


def test_prefetched_yields_everything_in_order_and_raises_the_producers_error() -> None:
    assert list(prefetched(iter(range(100)), 3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(prefetched(failing(), 2))


def test_prefetched_stops_its_thread_when_the_consumer_stops() -> None:
    before = threading.active_count()
    for item in prefetched(iter(range(10_000)), 2):
        if item == 3:
            break
    assert threading.active_count() == before
