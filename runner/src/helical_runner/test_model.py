"""`helical-runner test-model`: a tiny scGPT checkpoint for smoke tests and CI without the real weights.

It is Helical's own `TransformerModel`, built with exactly the arguments Helical's `load_model` uses,
so the file loads through the same code path as the real `best_model.pt`; only the dims are small and
the weights random (seeded). `vocab.json` has Helical's format: gene symbols plus `<pad>`, `<cls>`,
`<eoc>`. With scGPT's real gene vocabulary (`--vocab default_census_vocab.json`) real data maps to
tokens exactly as with the real model. `args.json` records the dims and `"test_model": true`, which the
runner reports in logs, metrics.json and the `test_model` StatsD gauge.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

from helical_runner.model import MODEL_FILE, SPECIAL_TOKENS, TINY_DIMS, VOCAB_FILE, ModelDims, build_transformer
from helical_runner.write import write_atomically

LOG = logging.getLogger(__name__)


def builtin_genes() -> list[str]:
    text = resources.files("helical_runner").joinpath("data/builtin_genes.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def load_gene_vocab(vocab_file: Path | None) -> dict[str, int]:
    """{symbol: id} from a JSON vocab (scGPT's default_census_vocab.json format) or the built-in list."""
    if vocab_file is None:
        return {gene: i for i, gene in enumerate(builtin_genes())}
    with open(vocab_file) as handle:
        vocab = json.load(handle)
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{vocab_file}: expected a JSON object {{gene_symbol: token_id}}")
    return {str(k): int(v) for k, v in vocab.items()}


def with_special_tokens(genes: dict[str, int]) -> dict[str, int]:
    """Append the special tokens after the genes, keeping the gene ids as given."""
    vocab = {g: i for g, i in genes.items() if g not in SPECIAL_TOKENS}
    next_id = max(vocab.values(), default=-1) + 1
    for token in SPECIAL_TOKENS:
        vocab[token] = next_id
        next_id += 1
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError("vocabulary ids must be 0..N-1 without gaps (they index the embedding table)")
    return vocab


def write_test_model(out: Path, vocab_file: Path | None = None, dims: ModelDims = TINY_DIMS, seed: int = 0) -> Path:
    """Write vocab.json, best_model.pt and args.json into `out`; returns the folder."""
    import torch

    vocab = with_special_tokens(load_gene_vocab(vocab_file))
    torch.manual_seed(seed)
    model = build_transformer(vocab, dims)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / VOCAB_FILE, lambda p: p.write_text(json.dumps(vocab)))
    write_atomically(out / MODEL_FILE, lambda p: torch.save(model.state_dict(), p))
    args = {**dims.as_dict(), "test_model": True, "seed": seed, "vocab_size": len(vocab),
            "vocab_source": str(vocab_file) if vocab_file else "built-in"}
    write_atomically(out / "args.json", lambda p: p.write_text(json.dumps(args, indent=2)))
    LOG.info("wrote a TEST scGPT model (random weights, %s, %d tokens) to %s", dims, len(vocab), out)
    return out
