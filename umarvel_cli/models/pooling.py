"""Pooling of last hidden states into one L2-normalised vector per item."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_pool(hidden: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked positions (non-pad, outside the instruction span), computed in fp32."""
    m = pool_mask.to(torch.float32).unsqueeze(-1)
    return (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of the last non-pad token (inputs are right-padded)."""
    last = attention_mask.long().sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor, method: str
) -> torch.Tensor:
    """`mean` or `last`, then L2-normalised."""
    if method == "mean":
        vec = mean_pool(hidden, pool_mask)
    elif method == "last":
        vec = last_token_pool(hidden, attention_mask)
    else:
        raise ValueError(f"unknown pooling {method!r}")
    return F.normalize(vec, dim=-1)
