"""The vision patch embedding as one matmul.

Qwen-VL's patch embedding is a Conv3d whose kernel equals its stride, applied to patches the
image processor has already cut and flattened: that is exactly `patches @ W.reshape(out, -1).T`.
On CPU (mkldnn) and GPU the Conv3d call is several times slower than the matmul. The weights stay
the Conv3d's own parameters, so saving, loading and training are unchanged.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _linear_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.proj.weight
    x = hidden_states.reshape(-1, weight[0].numel()).to(weight.dtype)
    return F.linear(x, weight.reshape(weight.shape[0], -1), self.proj.bias)


def linearize_patch_embed(backbone: Any) -> bool:
    """Swap the patch embedding's forward for the matmul; False when the layout is not the expected one."""
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    patch_embed = getattr(getattr(base, "visual", None), "patch_embed", None)
    conv = getattr(patch_embed, "proj", None)
    if not isinstance(conv, nn.Conv3d):
        return False
    if tuple(conv.kernel_size) != tuple(conv.stride) or any(conv.padding) or conv.groups != 1:
        return False
    patch_embed.forward = types.MethodType(_linear_forward, patch_embed)
    return True


def restore_patch_embed(backbone: Any) -> None:
    """Undo `linearize_patch_embed` (the class's Conv3d forward again); used by the naive benchmark."""
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    patch_embed = getattr(getattr(base, "visual", None), "patch_embed", None)
    if patch_embed is not None and "forward" in vars(patch_embed):
        del patch_embed.forward
