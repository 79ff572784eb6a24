"""The fast vision attention (rotary factors expanded over heads, equal-length images in one SDPA
call) gives transformers' vision tower output on every family, and steps aside where it must."""

from __future__ import annotations

import pytest
import torch

from tests.kernels.conftest import ON_GPU
from tests.models.tiny_models import TINY_BACKBONES
from umarvel_cli.models.attention import (
    _vision_attentions,
    restore_vision_attention,
    segment_lengths,
    speed_up_vision_attention,
)

# the fast path also runs on CUDA; the device check (UMARVEL_TEST_ON_GPU=1) compares it there
DEVICES = ["cpu", "cuda"] if ON_GPU else ["cpu"]

# runs of equal sizes (grouped into one call) between single ones; merge size 2 keeps sides even
GRIDS = [(1, 4, 4), (1, 4, 4), (1, 2, 6), (1, 6, 4), (1, 6, 4), (1, 6, 4), (1, 8, 8), (1, 2, 2)]


def _tower_outputs(visual, pixels, grid) -> list[torch.Tensor]:
    out = visual(pixels, grid_thw=grid)
    tensors = [out.last_hidden_state, out.pooler_output]
    tensors += list(getattr(out, "deepstack_features", None) or [])  # Qwen3-VL's extra taps
    return [t.clone() for t in tensors]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_fast_vision_attention_equals_the_stock_forward(backbone, device, tiny_models):
    from umarvel_cli.models.registry import get_family

    model = get_family(backbone).model_cls().from_pretrained(tiny_models[backbone]).eval().to(device)
    visual = model.visual
    torch.manual_seed(0)
    with torch.no_grad():
        for p in visual.parameters():
            p.normal_(0, 0.2)
    grid = torch.tensor(GRIDS, device=device)
    patch_dim = visual.patch_embed.proj.weight[0].numel()
    pixels = torch.randn(int(grid.prod(-1).sum()), patch_dim).to(device)
    with torch.inference_mode():
        stock = _tower_outputs(visual, pixels, grid)
    assert speed_up_vision_attention(model)
    modules = _vision_attentions(model)
    assert len(modules) == visual.config.depth and all("forward" in vars(m) for m in modules)
    with torch.inference_mode():
        fast = _tower_outputs(visual, pixels, grid)
    assert len(fast) == len(stock)
    atol = 1e-6 if device == "cpu" else 1e-5  # CUDA: batched and single SDPA calls tile differently
    for a, b in zip(fast, stock, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)
    # with gradients (training) the class's own forward runs: same numbers, differentiable
    pixels.requires_grad_(True)
    trained = _tower_outputs(visual, pixels, grid)
    torch.testing.assert_close(trained[1].detach(), stock[1], atol=atol, rtol=0)
    trained[1].sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    restore_vision_attention(model)
    assert not any("forward" in vars(m) for m in modules)


def test_embedders_use_the_fast_vision_attention(tiny_embedders):
    for emb in tiny_embedders.values():
        modules = _vision_attentions(emb.backbone)
        assert modules and all("forward" in vars(m) for m in modules)


def test_segment_lengths_are_read_once_per_tensor(monkeypatch):
    a = torch.tensor([0, 4, 10, 16], dtype=torch.int32)
    b = torch.tensor([0, 2, 4], dtype=torch.int32)
    assert segment_lengths(a) == [4, 6, 6] and segment_lengths(b) == [2, 2]
    reads = []
    real_tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: reads.append(1) or real_tolist(t))
    assert segment_lengths(a) == [4, 6, 6] and segment_lengths(b) == [2, 2]  # both cached
    assert reads == []
    c = a.clone()  # equal values, another tensor (another forward): read again
    assert segment_lengths(c) == [4, 6, 6] and reads == [1]
