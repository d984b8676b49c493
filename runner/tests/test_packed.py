"""The packed encoder computes Helical's TransformerModel: per cell, against Helical's own module on that cell alone,
on batches of very different lengths, with padding and neighbours never leaking in (issue #25).

On CPU at small dims everywhere (seconds); on CUDA at scGPT's real dims, in bf16, when a GPU is present.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from helical_runner import packed as packed_module
from helical_runner.batches import BatchBuilder
from helical_runner.encoders import MIN_COSINE, HelicalEncoder, PackedCells, choose_encoder
from helical_runner.errors import ConfigError
from helical_runner.model import SCGPT_DIMS, ModelDims, build_transformer
from helical_runner.test_model import load_gene_vocab, with_special_tokens

SMALL = ModelDims(embsize=64, nlayers=3, nheads=4, d_hid=96)
# Gene counts from one gene to past MAX_LENGTH (Helical samples 1,199 of them), several across attention tiles.
GENE_COUNTS = (1, 2, 5, 17, 50, 127, 128, 300, 600, 1198, 1199, 1500, 3)
MAX_LENGTH = 1200
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def helical_model(dims: ModelDims, seed: int = 0) -> tuple[torch.nn.Module, dict[str, int]]:
    """Helical's TransformerModel as the runner builds it, in eval mode, every parameter random (norms and biases
    too, which a fresh model leaves at 1 and 0)."""
    vocab = with_special_tokens(load_gene_vocab(None))
    torch.manual_seed(seed)
    model = build_transformer(vocab, dims)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.2)
    return model.eval(), vocab


def counts(gene_counts: tuple[int, ...], n_genes: int = 2000, seed: int = 1) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = [np.sort(rng.choice(n_genes, n, replace=False)) for n in gene_counts]
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])])
    data = rng.poisson(2.0, indptr[-1]).astype(np.float32) + 1
    return sp.csr_matrix((data, np.concatenate(rows), indptr), shape=(len(rows), n_genes))


def encoders(model: torch.nn.Module, vocab: dict[str, int], batch_size: int = 24,
             compile_backend: str | None = None) -> tuple[HelicalEncoder, PackedCells]:
    builder = BatchBuilder(cls_id=vocab["<cls>"], pad_id=vocab["<pad>"], pad_value=-2, max_length=MAX_LENGTH)
    return HelicalEncoder(model, builder, batch_size), PackedCells(model, builder, batch_size, compile_backend)


def embed(encoder, matrix: sp.csr_matrix, token_ids: np.ndarray, rows, device: str = "cpu",
          dtype: torch.dtype = torch.float32) -> np.ndarray:
    """One batch of `rows` through `encoder`, as the Embedder runs it."""
    batch = encoder.build(matrix, token_ids, np.asarray(rows))
    tensors = {k: v.to(device) for k, v in batch.tensors.items()}
    with torch.inference_mode():
        return encoder.embed(tensors, batch, dtype).float().cpu().numpy()


def each_alone(encoder, matrix, token_ids, **kwargs) -> np.ndarray:
    return np.vstack([embed(encoder, matrix, token_ids, [i], **kwargs) for i in range(matrix.shape[0])])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.fixture(scope="module")
def small() -> tuple[torch.nn.Module, dict[str, int], sp.csr_matrix, np.ndarray]:
    model, vocab = helical_model(SMALL)
    matrix = counts(GENE_COUNTS)
    token_ids = np.random.default_rng(2).integers(0, len(vocab) - 3, matrix.shape[1])  # genes, no special token
    return model, vocab, matrix, token_ids


def test_packed_equals_helicals_model_on_each_cell_alone(small) -> None:
    model, vocab, matrix, token_ids = small
    helical, packed = encoders(model, vocab)
    expected = each_alone(helical, matrix, token_ids)  # Helical's module, no padding at all
    got = embed(packed, matrix, token_ids, np.arange(matrix.shape[0]))  # every cell in one packed batch
    assert min_cosine(got, expected) >= MIN_COSINE
    np.testing.assert_allclose(got, expected, atol=2e-5)  # fp32: equal up to the order of the sums


def test_packed_equals_helicals_padded_batches_and_padding_never_leaks(small) -> None:
    model, vocab, matrix, token_ids = small
    helical, packed = encoders(model, vocab)
    everything = np.arange(matrix.shape[0])
    padded = embed(helical, matrix, token_ids, everything)  # Helical's module, one batch padded to 1,200
    together = embed(packed, matrix, token_ids, everything)
    assert min_cosine(together, padded) >= MIN_COSINE
    np.testing.assert_allclose(together, padded, atol=2e-5)
    # A cell's embedding is its own: the same with other neighbours, in another order, or alone.
    reordered = embed(packed, matrix, token_ids, everything[::-1])[::-1]
    alone = each_alone(packed, matrix, token_ids)
    np.testing.assert_allclose(reordered, together, atol=2e-5)
    np.testing.assert_allclose(alone, together, atol=2e-5)


def test_the_uniform_and_padded_attention_agree_on_equal_lengths(small) -> None:
    model, vocab, _, token_ids = small
    helical, packed = encoders(model, vocab)
    matrix = counts((300,) * 4, seed=5)
    batch = packed.build(matrix, token_ids, np.arange(4))
    assert batch.uniform and batch.max_len == 301
    uniform = embed(packed, matrix, token_ids, np.arange(4))
    batch.uniform = False  # the same cells through padded_attention
    with torch.inference_mode():
        padded = packed.embed(batch.tensors, batch, torch.float32).numpy()
    np.testing.assert_allclose(uniform, padded, atol=2e-5)
    np.testing.assert_allclose(uniform, each_alone(helical, matrix, token_ids), atol=2e-5)


def test_bf16_autocast_on_cpu_keeps_the_cosine(small) -> None:
    model, vocab, matrix, token_ids = small
    helical, packed = encoders(model, vocab)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = embed(packed, matrix, token_ids, np.arange(matrix.shape[0]))
    assert min_cosine(got, each_alone(helical, matrix, token_ids)) >= MIN_COSINE


def test_token_budget_batches_hold_many_short_cells_and_few_long_ones(small) -> None:
    model, vocab, matrix, _ = small
    _, packed = encoders(model, vocab, batch_size=2)  # 2,400 tokens a batch
    genes = np.diff(matrix.indptr)
    order = np.argsort(genes, kind="stable")
    batches = packed.plan(order, genes)
    assert np.array_equal(np.concatenate(batches), order)
    tokens = [int(np.minimum(genes[b], MAX_LENGTH - 1).sum() + b.size) for b in batches]
    assert all(t <= 2 * MAX_LENGTH for t in tokens), tokens
    assert batches[0].size >= 8 and batches[-1].size <= 2  # short cells share a batch; long ones go two at most


def test_compiled_feed_forward_is_one_graph_for_every_layer_and_batch(small) -> None:
    model, vocab, matrix, token_ids = small
    torch._dynamo.reset()
    _, eager = encoders(model, vocab)
    _, compiled = encoders(model, vocab, compile_backend="aot_eager")  # the graph dynamo traces, no C compiler
    stats = torch._dynamo.utils.counters["stats"]
    before = stats["unique_graphs"]
    for rows in (np.arange(matrix.shape[0]), np.arange(3), np.arange(5, 9)):  # three token counts
        np.testing.assert_allclose(embed(compiled, matrix, token_ids, rows), embed(eager, matrix, token_ids, rows),
                                   atol=2e-5)
    assert stats["unique_graphs"] - before == 1, dict(stats)


def test_a_packed_encoder_that_leaks_across_cells_is_never_chosen(small, monkeypatch, caplog) -> None:
    from helical_runner.embed import Embedder
    from helical_runner.model import LoadedModel

    model, vocab, _, _ = small

    def whole_batch(q, k, v, seg):  # attention over the whole batch: neighbours leak in
        return packed_module.padded_attention(q, k, v, packed_module.Segments(
            seg.cu_seqlens[[0, -1]], torch.zeros_like(seg.cell), torch.arange(seg.cell.numel()),
            seg.cell.numel(), True))

    config = {"pad_token": "<pad>", "pad_value": -2, "MAX_LENGTH": MAX_LENGTH}
    loaded = LoadedModel(model, config, None, SMALL, vocab, True)
    assert Embedder(loaded, "cpu", "fp32", 8, encoder="packed").encoder.name == "packed"
    monkeypatch.setattr(packed_module, "attention", whole_batch)
    with pytest.raises(ConfigError, match="disagrees with Helical's"):
        Embedder(loaded, "cpu", "fp32", 8, encoder="packed")


def test_auto_takes_packed_on_cuda_only_where_it_agrees(small, caplog) -> None:
    model, vocab, _, _ = small
    helical, packed = encoders(model, vocab)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    agree, disagree = (lambda a, b: 0.9999), (lambda a, b: 0.99)
    assert choose_encoder("auto", cpu, helical, lambda: packed, agree) is helical
    assert choose_encoder("auto", cuda, helical, lambda: packed, agree) is packed
    with caplog.at_level(logging.WARNING):
        assert choose_encoder("auto", cuda, helical, lambda: packed, disagree) is helical
    assert "min cosine 0.990000" in caplog.text
    assert choose_encoder("packed", cpu, helical, lambda: packed, agree) is packed
    assert choose_encoder("helical", cuda, helical, lambda: packed, agree) is helical
    with pytest.raises(ConfigError, match="ENCODER=packed"):
        choose_encoder("packed", cuda, helical, lambda: packed, disagree)

    def no_kernel(a, b):
        raise RuntimeError("no kernel image is available")

    assert choose_encoder("auto", cuda, helical, lambda: packed, no_kernel) is helical
    with pytest.raises(ConfigError, match=r"failed on the probe cells \(RuntimeError: no kernel image"):
        choose_encoder("packed", cuda, helical, lambda: packed, no_kernel)


def test_the_cli_with_encoder_packed_writes_what_helical_writes(run_cli, counts_file, tmp_path) -> None:
    import anndata as ad

    outputs = {}
    for encoder in ("helical", "packed"):
        code, summary, log = run_cli("--data", str(counts_file), "--encoder", encoder, "--chunk-cells", "50",
                                     "--batch-size", "4", "--classifier", "off", output=tmp_path / encoder)
        assert code == 0 and f"encoder {encoder} (ENCODER={encoder})" in log
        folder = Path(summary["datasets"][0]["output_dir"])
        metrics = json.loads((folder / "metrics.json").read_text())
        timing = metrics["embed_timing"]
        assert metrics["encoder"] == encoder and timing["cells"] == 120 and timing["device_busy"] is None
        outputs[encoder] = (ad.read_h5ad(folder / "embeddings.h5ad").obsm["X_scgpt"], timing)
    (helical, by_cells), (packed, by_tokens) = outputs["helical"], outputs["packed"]
    assert min_cosine(packed, helical) >= MIN_COSINE
    np.testing.assert_allclose(packed, helical, atol=2e-5)
    # Batches of 4 x 1,200 tokens hold many more of these short cells, and no padding is computed.
    assert by_tokens["batches"] < by_cells["batches"] and by_tokens["tokens"] < by_cells["tokens"]


@requires_cuda
def test_on_cuda_at_real_dims_packed_equals_helicals_model() -> None:
    assert packed_module.varlen_attn is not None, "torch >= 2.10: FlashAttention's variable-length kernel"
    model, vocab = helical_model(SCGPT_DIMS)
    model.to("cuda", torch.bfloat16)
    matrix = counts(GENE_COUNTS + (1500,) * 6, n_genes=4000)
    token_ids = np.random.default_rng(2).integers(0, len(vocab) - 3, matrix.shape[1])
    helical, packed = encoders(model, vocab)
    on_gpu = {"device": "cuda", "dtype": torch.bfloat16}
    expected = each_alone(helical, matrix, token_ids, **on_gpu)
    everything = np.arange(matrix.shape[0])
    mixed = embed(packed, matrix, token_ids, everything, **on_gpu)  # variable-length FlashAttention
    uniform = embed(packed, matrix, token_ids, everything[-7:], **on_gpu)  # 1,200 tokens each: dense SDPA
    padded = embed(helical, matrix, token_ids, everything, **on_gpu)  # Helical's padded batch
    assert min_cosine(mixed, expected) >= MIN_COSINE
    assert min_cosine(uniform, expected[-7:]) >= MIN_COSINE
    assert min_cosine(mixed, padded) >= MIN_COSINE
