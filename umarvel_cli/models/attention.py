"""Bidirectional (or causal) attention in the language model, for every batch.

transformers builds the text mask from `language_model.config.is_causal`: False gives a
bidirectional mask (padding keys masked) even when there is no padding or the batch has one item,
where the released code fell back to causal attention (bug B1). The per-module `is_causal` flag
is what SDPA/flash-attention read when the mask is None, so both are set.
"""

from __future__ import annotations

import threading
import types
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def language_model(backbone: Any) -> nn.Module:
    """The text decoder inside a Qwen-VL model (also through a peft wrapper)."""
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    lm = getattr(base, "language_model", None)
    if lm is None:
        lm = getattr(getattr(base, "model", None), "language_model", None)
    if lm is None:
        raise TypeError(f"{type(base).__name__} has no language_model")
    return lm


def set_attention(backbone: Any, mode: str) -> None:
    """Make the language model's self-attention bidirectional or causal (mode from umarvel.json)."""
    causal = mode == "causal"
    lm = language_model(backbone)
    lm.config.is_causal = causal
    for module in lm.modules():
        if module is not lm and hasattr(module, "is_causal"):
            module.is_causal = causal


# The vision attention classes whose forward `_fast_vision_attention` reproduces (one shared code in
# transformers 5: qkv, rotary in fp32, one SDPA call per image or window, proj).
VISION_ATTENTION_CLASSES = ("VisionAttention", "Qwen2_5_VLVisionAttention", "Qwen3VLVisionAttention")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' `apply_rotary_pos_emb_vision` on one tensor, with cos/sin already [N, heads, d]."""
    x = x.float().contiguous()
    return x * cos + _rotate_half(x) * sin


_LENGTHS = threading.local()  # per thread: [(weakref to cu_seqlens, its segment lengths)], newest first


def segment_lengths(cu_seqlens: torch.Tensor) -> list[int]:
    """Image (or window) lengths from `cu_seqlens`, read from the device once per tensor: every block
    of one vision forward gets the same tensor, and on a GPU each read waits for the queue to drain."""
    cache = getattr(_LENGTHS, "entries", None)
    if cache is None:
        cache = _LENGTHS.entries = []
    for ref, lengths in cache:
        if ref() is cu_seqlens:
            return lengths
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    cache.insert(0, (weakref.ref(cu_seqlens), lengths))
    del cache[4:]  # Qwen2.5-VL alternates two tensors (full and windowed) within a forward
    return lengths


def _fast_vision_attention(
    self: nn.Module,
    hidden_states: torch.Tensor,
    cu_seqlens: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """The class's own forward, same numbers, less time: the rotary factors are expanded over the
    heads before multiplying (a broadcast multiply of 16-wide rows is several times slower than a
    plain one on CPU), runs of equal-length images (or windows) share one SDPA call, and the lengths
    are read from the device once per forward instead of once per block (on a GPU the stock forward
    waits for the queue to drain in every block). Gradients (training) or another attention
    implementation take the class's forward."""
    stock = type(self).forward
    if torch.is_grad_enabled() or self.config._attn_implementation != "sdpa" or position_embeddings is None:
        return stock(
            self, hidden_states, cu_seqlens=cu_seqlens, position_embeddings=position_embeddings, **kwargs
        )
    n, heads = hidden_states.shape[0], self.num_heads
    q, k, v = self.qkv(hidden_states).reshape(n, 3, heads, -1).permute(1, 0, 2, 3).unbind(0)
    dtype = q.dtype
    cos, sin = (
        t.float().unsqueeze(-2).expand(n, heads, t.shape[-1]).contiguous() for t in position_embeddings
    )
    q, k = (_rotary(x, cos, sin).to(dtype) for x in (q, k))
    lengths = segment_lengths(cu_seqlens)
    out = torch.empty(n, heads, q.shape[-1], dtype=q.dtype, device=q.device)
    start = i = 0
    while i < len(lengths):
        size, j = lengths[i], i
        while j < len(lengths) and lengths[j] == size:
            j += 1
        rows = slice(start, start + (j - i) * size)
        qq, kk, vv = (x[rows].view(j - i, size, heads, -1).transpose(1, 2) for x in (q, k, v))
        o = F.scaled_dot_product_attention(qq, kk, vv, scale=self.scaling)
        out[rows].view(j - i, size, heads, -1).copy_(o.transpose(1, 2))
        start, i = rows.stop, j
    return self.proj(out.view(n, -1))


def _vision_attentions(backbone: Any) -> list[nn.Module]:
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    visual = getattr(base, "visual", None)
    if visual is None:
        return []
    return [m for m in visual.modules() if type(m).__name__ in VISION_ATTENTION_CLASSES]


def speed_up_vision_attention(backbone: Any) -> bool:
    """Give the vision tower's attention modules `_fast_vision_attention` (same numbers); False if none."""
    modules = _vision_attentions(backbone)
    for m in modules:
        m.forward = types.MethodType(_fast_vision_attention, m)
    return bool(modules)


def restore_vision_attention(backbone: Any) -> None:
    """Undo `speed_up_vision_attention` (the class's forward again); used by the naive benchmark."""
    for m in _vision_attentions(backbone):
        if "forward" in vars(m):
            del m.forward
