"""Helical's scGPT encoder on packed tokens: the same modules and weights, no padding anywhere.

`TransformerModel._encode` takes cells x longest-cell tensors and a key padding mask; Helical's attention turns
the mask into an additive float bias, which rules out FlashAttention on a GPU (PyTorch then picks its
memory-efficient kernel), and every projection, norm and feed-forward block runs on the padding too. Here the
batch's tokens lie one after another (tokens x d_model) and Helical's own modules of the loaded model (gene
encoder, value encoder, each layer's in/out projections, norms and feed-forward block) run on them as they are:
they work token by token. Only the attention core is replaced, since it needs each cell's bounds:
- every cell of the batch the same length (cells at the 1,200-gene cap): scaled_dot_product_attention on
  (cells, heads, length, head_dim) with no mask, which PyTorch runs with FlashAttention (or cuDNN) on a GPU;
- otherwise, on CUDA in bf16/fp16: FlashAttention's variable-length kernel (`torch.nn.attention.varlen`);
- otherwise (CPU, fp32): each cell scattered into a padded block, SDPA with a boolean key mask.
A cell's tokens attend to its own tokens only, as with Helical's mask; padded query rows, which Helical computes
and nobody reads, are never computed. `after_attention` (residual, norms, feed-forward: the pointwise work
between the matrix products) can be compiled with torch.compile: one graph serves every layer and batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

try:  # torch >= 2.10
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # pragma: no cover - older torch: padded attention instead
    varlen_attn = None

FLASH_DTYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Segments:
    """Where each cell's tokens lie in a packed batch (all tensors on the batch's device)."""

    cu_seqlens: torch.Tensor  # (cells + 1,) int32: cell i is tokens cu_seqlens[i]:cu_seqlens[i + 1]
    cell: torch.Tensor  # (tokens,) int64: the cell of each token
    position: torch.Tensor  # (tokens,) int64: its position within its cell, 0 = <cls>
    max_len: int  # the longest cell's tokens (a host number: nothing is read back from the device)
    uniform: bool  # every cell has max_len tokens

    @property
    def n_cells(self) -> int:
        return self.cu_seqlens.shape[0] - 1


def unsupported(model: Any) -> str | None:
    """Why the packed path cannot compute `model._encode`, or None when it can."""
    if model.training:
        return "the model is in training mode (dropout on)"
    if getattr(model, "input_emb_style", None) != "continuous":
        return f"input_emb_style {getattr(model, 'input_emb_style', None)!r} (only 'continuous')"
    if getattr(model, "dsbn", None) is not None or getattr(model, "bn", None) is not None or model.use_batch_labels:
        return "batch labels or batch norm"
    for layer in model.transformer_encoder.layers:
        attn = layer.self_attn
        if not getattr(attn, "batch_first", False) or not hasattr(attn, "in_proj_weight"):
            return f"attention module {type(attn).__name__} without batch_first packed in/out projections"
        if not all(hasattr(layer, name) for name in ("linear1", "linear2", "norm1", "norm2", "activation")):
            return f"encoder layer {type(layer).__name__} is not torch's TransformerEncoderLayer shape"
    return None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seg: Segments) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v within each cell; q, k, v and the result are (tokens, heads, head_dim)."""
    tokens, heads, head_dim = q.shape
    if seg.uniform:
        def cells(t: torch.Tensor) -> torch.Tensor:
            return t.view(seg.n_cells, seg.max_len, heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(cells(q), cells(k), cells(v))
        return out.transpose(1, 2).reshape(tokens, heads, head_dim)
    if q.is_cuda and q.dtype in FLASH_DTYPES and varlen_attn is not None:
        return varlen_attn(q, k, v, seg.cu_seqlens, seg.cu_seqlens, seg.max_len, seg.max_len)
    return padded_attention(q, k, v, seg)


def padded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seg: Segments) -> torch.Tensor:
    """The same, by way of a padded (cells, heads, max_len, head_dim) block with a key mask."""
    heads, head_dim = q.shape[1:]
    lengths = seg.cu_seqlens[1:] - seg.cu_seqlens[:-1]
    keep = torch.arange(seg.max_len, device=q.device) < lengths[:, None]  # (cells, max_len): real keys

    def padded(t: torch.Tensor) -> torch.Tensor:
        block = t.new_zeros(seg.n_cells, seg.max_len, heads, head_dim)
        block[seg.cell, seg.position] = t
        return block.transpose(1, 2)

    out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=keep[:, None, None, :])
    return out.transpose(1, 2)[seg.cell, seg.position]


def after_attention(x: torch.Tensor, context: torch.Tensor, out_proj: torch.nn.Module, norm1: torch.nn.Module,
                    linear1: torch.nn.Module, linear2: torch.nn.Module, norm2: torch.nn.Module,
                    activation: Any, norm_first: bool) -> torch.Tensor:
    """The rest of torch's TransformerEncoderLayer (Helical's copy) after the attention core, dropout off."""
    if norm_first:
        x = x + out_proj(context)
        return x + linear2(activation(linear1(norm2(x))))
    x = norm1(x + out_proj(context))
    return norm2(x + linear2(activation(linear1(x))))


class PackedEncoder:
    """`model._encode` on packed tokens, with the loaded model's own modules and parameters (not copies: a
    dtype or device change of the model is seen here)."""

    def __init__(self, model: Any, compile_backend: str | None = None) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"the packed encoder cannot compute this model: {reason}")
        self.model = model
        self.after_attention = after_attention
        if compile_backend is not None:
            self.after_attention = torch.compile(after_attention, backend=compile_backend, dynamic=True)

    def encode(self, genes: torch.Tensor, values: torch.Tensor, seg: Segments) -> torch.Tensor:
        """(tokens, d_model) hidden states of the last layer for (tokens,) gene ids and binned values."""
        model = self.model
        x = model.encoder(genes) + model.value_encoder(values)
        for layer in model.transformer_encoder.layers:
            attn = layer.self_attn
            h = layer.norm1(x) if layer.norm_first else x
            qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).view(-1, 3, attn.num_heads, attn.head_dim)
            context = attention(*qkv.unbind(1), seg).reshape(-1, attn.embed_dim)
            x = self.after_attention(x, context, attn.out_proj, layer.norm1, layer.linear1, layer.linear2,
                                     layer.norm2, layer.activation, layer.norm_first)
        if model.transformer_encoder.norm is not None:
            x = model.transformer_encoder.norm(x)
        return x
