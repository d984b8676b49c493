"""The Embedder's loop: rows land where they belong across chunks, cells without genes stay NaN, and on CUDA
(its events and pinned memory faked here, so the loop's own logic runs on any machine) results are collected
without waiting, in order, with each batch's GPU time summed."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_packed import MAX_LENGTH, SMALL, counts, helical_model

from helical_runner.embed import Embedder
from helical_runner.model import LoadedModel


class FakeEvent:
    """torch.cuda.Event as the loop uses it; query() says "not yet" every other time, so both the
    collect-as-you-go and the collect-at-the-end paths run."""

    asked = 0

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.recorded = False

    def record(self) -> None:
        self.recorded = True

    def query(self) -> bool:
        FakeEvent.asked += 1
        return self.recorded and FakeEvent.asked % 2 == 0

    def synchronize(self) -> None:
        assert self.recorded

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.recorded and end.recorded
        return 2.0  # ms


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    model, vocab = helical_model(SMALL)
    return LoadedModel(model, {"pad_token": "<pad>", "pad_value": -2, "MAX_LENGTH": MAX_LENGTH}, None, SMALL,
                       vocab, True)


def chunks_with_empty_cells() -> tuple[list[sp.csr_matrix], np.ndarray]:
    matrix = counts((3, 0, 40, 7, 300, 0, 12, 1, 90, 5, 0, 64), seed=9)
    matrix.data[matrix.indptr[4]:matrix.indptr[5]] = 0  # stored zeros only: no genes either
    token_ids = np.random.default_rng(4).integers(0, 700, matrix.shape[1])
    return [matrix[0:5], matrix[5:6], matrix[6:12]], token_ids


@pytest.mark.parametrize("encoder", ["helical", "packed"])
def test_the_cuda_loop_collects_every_batch_in_place_without_waiting(loaded, encoder, monkeypatch) -> None:
    chunks, token_ids = chunks_with_empty_cells()
    embedder = Embedder(loaded, "cpu", "fp32", 2, encoder=encoder)
    expected = embedder.embed_chunks(chunks, 12, token_ids, "cpu")
    assert embedder.timing.device_seconds is None and embedder.timing.report()["device_busy"] is None
    empty = [1, 4, 5, 10]
    assert np.isnan(expected[empty]).all() and np.isfinite(np.delete(expected, empty, axis=0)).all()

    pinned = []
    empty_tensor = torch.empty

    def empty_pinned(*args, pin_memory: bool = False, **kwargs):
        pinned.append(pin_memory)
        return empty_tensor(*args, **kwargs)

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch, "empty", empty_pinned)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)
    embedder.on_gpu = True  # the CUDA branch of the loop (background batches, copies back, events) on the CPU
    got = embedder.embed_chunks(iter(chunks), 12, token_ids, "fake cuda")
    np.testing.assert_array_equal(got, expected)
    timing = embedder.timing.report()
    assert pinned and all(pinned) and len(pinned) == timing["batches"]
    assert timing["device_seconds"] == pytest.approx(0.002 * timing["batches"])
    assert timing["cells"] == 12 and timing["device_busy"] is not None


def test_a_chunk_count_that_does_not_add_up_is_an_error(loaded) -> None:
    chunks, token_ids = chunks_with_empty_cells()
    with pytest.raises(RuntimeError, match="11 cells arrived for embedding, 12 were expected"):
        Embedder(loaded, "cpu", "fp32", 2, encoder="helical").embed_chunks(chunks[:1] + chunks[2:], 12, token_ids, "x")
