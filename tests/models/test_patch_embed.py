"""The matmul patch embedding equals transformers' Conv3d on every family."""

from __future__ import annotations

import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES
from umarvel_cli.models.patch_embed import linearize_patch_embed


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_linear_patch_embed_equals_conv3d(backbone, tiny_models):
    from umarvel_cli.models.registry import get_family

    model = get_family(backbone).model_cls().from_pretrained(tiny_models[backbone])
    pe = model.visual.patch_embed
    with torch.no_grad():
        pe.proj.weight.normal_()
        if pe.proj.bias is not None:
            pe.proj.bias.normal_()
    x = torch.randn(37, pe.proj.weight[0].numel())
    with torch.inference_mode():
        stock = pe(x)
    assert linearize_patch_embed(model)
    with torch.inference_mode():
        fast = pe(x)
    assert fast.shape == stock.shape == (37, pe.proj.weight.shape[0])
    torch.testing.assert_close(fast, stock, atol=1e-4, rtol=1e-4)
    assert "proj.weight" in dict(pe.named_parameters())  # weights unchanged, still saved as the conv's
