"""The vision patch embedding as one matmul, optionally on raw uint8 pixel patches.

Qwen-VL's patch embedding is a Conv3d whose kernel equals its stride, applied to patches the
image processor has already cut and flattened: that is exactly `patches @ W.reshape(out, -1).T`.
On CPU (mkldnn) and GPU the Conv3d call is several times slower than the matmul. The weights stay
the Conv3d's own parameters, so saving, loading and training are unchanged.

Raw patches (inference): a still image's patches hold T identical temporal copies of
`pixel * mul + add` (the processor's rescale + normalise, per channel). Both are linear, so they
fold into the weights: `raw @ (mul * sum_t W_t).T + (bias + sum W * add)`, where `raw` is the
uint8 pixels cut into [N, P*P*C] rows (one frame, not normalised, in the image's own pixel-major
layout; the folded weights are permuted to match): 8x less data to build and move, half the
matmul, same numbers up to float rounding. The forward tells the two layouts apart by the row
width (C*T*P*P normalised, P*P*C raw); raw rows need `set_raw_normalization`.

Raw rows reach the patch embedding still as uint8 when wrapped in `RawPatches` (the model's own
`pixel_values.type(visual.dtype)` leaves them alone): the CPU then converts them in blocks of
RAW_BLOCK_ROWS rows that stay in cache, instead of writing and reading back a full fp32 copy of the
batch's pixels, 4x their size (about 10 ms of memory traffic per large batch on one CPU core).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# rows of raw uint8 patches converted to fp32 at a time on CPU (588 wide: 2.4 MB, cache-resident)
RAW_BLOCK_ROWS = 1024


class RawPatches(torch.Tensor):
    """uint8 patch rows that pass the model's `pixel_values.type(dtype)` cast unchanged."""

    def type(self, dtype: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        if dtype is None:
            return super().type()
        return self


def as_raw_patches(pixel_values: torch.Tensor) -> torch.Tensor:
    """Wrap uint8 rows so they reach the linearised patch embedding unconverted; others unchanged."""
    if pixel_values.dtype != torch.uint8:
        return pixel_values
    return pixel_values.as_subclass(RawPatches)


def _raw_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`F.linear(x.float(), weight, bias)`; on CPU uint8 rows are converted a block at a time."""
    if x.dtype == torch.float32 or x.device.type != "cpu":
        return F.linear(x.to(torch.float32), weight, bias)
    n = x.shape[0]
    out = torch.empty(n, weight.shape[0], dtype=torch.float32)
    block = torch.empty(min(n, RAW_BLOCK_ROWS), x.shape[1], dtype=torch.float32)
    for start in range(0, n, RAW_BLOCK_ROWS):
        stop = min(n, start + RAW_BLOCK_ROWS)
        rows = block[: stop - start]
        rows.copy_(x[start:stop])
        torch.addmm(bias, rows, weight.T, out=out[start:stop])
    return out


def _folded_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [out, P*P*C], bias [out]) that map raw uint8 patches (`ImagePatcher.cut_raw` rows) to
    the normalised result, in fp32."""
    weight = module.proj.weight.detach()
    mul, add = (t.to(weight.device, torch.float64) for t in module.raw_normalization)
    w = weight.to(torch.float64).sum(2)  # [out, C, P, P]: the temporal copies are identical
    folded = (w * mul.view(1, -1, 1, 1)).permute(0, 2, 3, 1).reshape(w.shape[0], -1)
    bias = (w.sum((2, 3)) * add).sum(1)
    if module.proj.bias is not None:
        bias = bias + module.proj.bias.detach().to(torch.float64)
    return folded.float(), bias.float()


def _linear_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.proj.weight
    raw_width = weight.shape[1] * weight.shape[3] * weight.shape[4]
    if isinstance(hidden_states, RawPatches):
        hidden_states = hidden_states.as_subclass(torch.Tensor)
    if hidden_states.shape[-1] == raw_width and getattr(self, "raw_normalization", None) is not None:
        w, b = _folded_weights(self)
        return _raw_linear(hidden_states.reshape(-1, raw_width), w, b).to(weight.dtype)
    x = hidden_states.reshape(-1, weight[0].numel()).to(weight.dtype)
    return F.linear(x, weight.reshape(weight.shape[0], -1), self.proj.bias)


def _patch_embed(backbone: Any) -> nn.Module | None:
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    return getattr(getattr(base, "visual", None), "patch_embed", None)


def linearize_patch_embed(backbone: Any) -> bool:
    """Swap the patch embedding's forward for the matmul; False when the layout is not the expected one."""
    patch_embed = _patch_embed(backbone)
    conv = getattr(patch_embed, "proj", None)
    if not isinstance(conv, nn.Conv3d):
        return False
    if tuple(conv.kernel_size) != tuple(conv.stride) or any(conv.padding) or conv.groups != 1:
        return False
    patch_embed.forward = types.MethodType(_linear_forward, patch_embed)
    return True


def set_raw_normalization(backbone: Any, mul: np.ndarray, add: np.ndarray) -> bool:
    """Let the linearised patch embedding take raw uint8 patches normalised as `x * mul + add` (per channel).

    False (nothing set) when the patch embedding is not a linearised Conv3d: callers then keep
    feeding normalised patches.
    """
    patch_embed = _patch_embed(backbone)
    if patch_embed is None or "forward" not in vars(patch_embed):
        return False
    if not isinstance(getattr(patch_embed, "proj", None), nn.Conv3d):
        return False
    patch_embed.raw_normalization = (torch.as_tensor(mul), torch.as_tensor(add))
    return True


def accepts_raw_patches(backbone: Any) -> bool:
    """Whether the patch embedding can take raw patches now (still linearised, still a plain Conv3d)."""
    patch_embed = _patch_embed(backbone)
    return (
        patch_embed is not None
        and "forward" in vars(patch_embed)
        and isinstance(getattr(patch_embed, "proj", None), nn.Conv3d)
        and getattr(patch_embed, "raw_normalization", None) is not None
    )


def restore_patch_embed(backbone: Any) -> None:
    """Undo `linearize_patch_embed` (the class's Conv3d forward again); used by the naive benchmark."""
    patch_embed = _patch_embed(backbone)
    if patch_embed is not None and "forward" in vars(patch_embed):
        del patch_embed.forward
