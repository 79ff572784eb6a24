"""The FLOP counter against a hand computation, and its weight counts against the real modules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES
from umarvel_cli.bench.flops import (
    flop_rate_text,
    lm_params_per_layer,
    model_flops,
    peak_bf16,
    vision_block_params,
)
from umarvel_cli.models.attention import language_model


def _config() -> SimpleNamespace:
    text = SimpleNamespace(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=4,
    )
    vision = SimpleNamespace(
        model_type="qwen2_vl",
        depth=1,
        embed_dim=4,
        hidden_size=8,
        mlp_ratio=2,
        patch_size=2,
        temporal_patch_size=2,
        in_channels=3,
        spatial_merge_size=2,
    )
    return SimpleNamespace(text_config=text, vision_config=vision)


def test_model_flops_by_hand():
    # LM layer weights: q 8x8 + o 8x8 + k 8x4 + v 8x4 + MLP 3 x 8x16 = 576
    # per layer: 2 x 576 x (3 + 5) tokens + 4 x width 8 x (3^2 + 5^2) pairs = 9216 + 1088
    lm = 2 * (9216 + 1088)
    # vision, one image of 1x2x4 = 8 patches, width 4: patch embedding 2 x (3*2*2*2) x 4 x 8 = 1536;
    # block weights qkv+proj 4x4x4 + fc1/fc2 2 x 4x8 = 128: 2 x 128 x 8 = 2048; attention 4 x 4 x 8^2 = 1024;
    # merger: 2 merged tokens, 16 -> 16 -> 8: 2 x 2 x (256 + 128) = 1536
    vision = 1536 + 2048 + 1024 + 1536
    assert model_flops(_config(), [3, 5], [(1, 2, 4)]) == lm + vision == 26752
    assert model_flops(_config(), [3, 5]) == lm  # text only


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_weight_counts_match_the_modules(backbone, tiny_embedders):
    """The per-layer weights the counter derives from the config are the modules' Linear weights."""
    model = tiny_embedders[backbone].backbone

    def linear_weights(module: torch.nn.Module) -> int:
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))

    lm = language_model(model)
    assert linear_weights(lm.layers[0]) == lm_params_per_layer(model.config.text_config)
    visual = model.model.visual if hasattr(model, "model") else model.visual
    assert linear_weights(visual.blocks[0]) == vision_block_params(model.config.vision_config)


def test_mfu_against_the_card_peak():
    assert peak_bf16("NVIDIA H200") == peak_bf16("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_bf16("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_bf16("cpu") is None
    mfu, text = flop_rate_text(494.5e12, 1.0, "NVIDIA H100 80GB HBM3")
    assert mfu == pytest.approx(0.5) and text == "494.5 TFLOP/s, MFU 50.0%"
    assert flop_rate_text(3e9, 2.0, "cpu") == (None, "1.5 GFLOP/s")
