"""Bidirectional (or causal) attention in the language model, for every batch.

transformers builds the text mask from `language_model.config.is_causal`: False gives a
bidirectional mask (padding keys masked) even when there is no padding or the batch has one item,
where the released code fell back to causal attention (bug B1). The per-module `is_causal` flag
is what SDPA/flash-attention read when the mask is None, so both are set.
"""

from __future__ import annotations

from typing import Any

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
