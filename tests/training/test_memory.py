"""The dry run's memory estimate reads the image geometry from the backbone family and umarvel.json."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.training.conftest import toy_config
from umarvel_cli.models.umarvel_config import UmarvelConfig
from umarvel_cli.training.memory import TEXT_TOKENS, image_tokens, memory_estimate


@pytest.mark.parametrize("backbone, factor", [("tiny-qwen2-vl", 28), ("tiny-qwen3-vl", 32)])
def test_image_tokens_use_the_family_factor(tiny_models, backbone, factor):
    folder = tiny_models[backbone]
    max_pixels = UmarvelConfig.load(folder).max_pixels
    assert image_tokens(folder) == max_pixels // (factor * factor)


def test_a_plain_checkpoint_uses_the_family_defaults(tiny_models, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(tiny_models["tiny-qwen3-vl"] / "config.json", plain / "config.json")
    assert image_tokens(plain) == UmarvelConfig(family="qwen3-vl").max_pixels // (32 * 32)


def test_activations_grow_with_max_pixels(tiny_models, tmp_path):
    small = tmp_path / "small"
    shutil.copytree(tiny_models["tiny-qwen3-vl"], small)
    settings = json.loads((small / "umarvel.json").read_text())
    cfg = toy_config(batch_size=8, gradient_checkpointing=False)
    for max_pixels, name in ((64 * 32 * 32, "a"), (256 * 32 * 32, "b")):
        folder = tmp_path / name
        shutil.copytree(small, folder)
        (folder / "umarvel.json").write_text(
            json.dumps({**settings, "min_pixels": 32 * 32, "max_pixels": max_pixels})
        )
    a = memory_estimate(tmp_path / "a", cfg, world=1, gpu=False)
    b = memory_estimate(tmp_path / "b", cfg, world=1, gpu=False)
    # activations scale with tokens per sequence: 128 text tokens + 64 or 256 image tokens
    assert b["activations_gib"] / a["activations_gib"] == pytest.approx(
        (TEXT_TOKENS + 256) / (TEXT_TOKENS + 64)
    )
    assert a["weights_gib"] == b["weights_gib"] > 0


def test_distill_counts_each_query_list_and_the_training_pixel_cap(tiny_models):
    folder = tiny_models["tiny-qwen2-vl"]
    own = image_tokens(folder)
    cfg = toy_config(batch_size=8, gradient_checkpointing=False, hard_negatives=0, distill_topk=9)
    plain = memory_estimate(folder, cfg, world=1, gpu=False)
    distill = memory_estimate(folder, cfg, world=1, gpu=False, stage="distill")
    # a query with its 9 candidates is 10 sequences; a query and its positive are 2
    assert distill["activations_gib"] / plain["activations_gib"] == pytest.approx(10 / 2)
    capped = toy_config(batch_size=8, gradient_checkpointing=False, max_image_pixels=4 * 28 * 28)
    assert image_tokens(folder, 4 * 28 * 28) == 4 < own
    assert memory_estimate(folder, capped, world=1, gpu=False)["activations_gib"] / memory_estimate(
        folder, toy_config(batch_size=8, gradient_checkpointing=False), world=1, gpu=False
    )["activations_gib"] == pytest.approx((TEXT_TOKENS + 4) / (TEXT_TOKENS + own))


def test_rerank_counts_two_prompts_of_a_query_and_a_candidate(tiny_models):
    folder = tiny_models["tiny-qwen2-vl"]
    cfg = toy_config(batch_size=8, gradient_checkpointing=False, hard_negatives=1)
    plain = memory_estimate(folder, cfg, world=1, gpu=False)  # query, positive, 1 negative: 3
    rerank = memory_estimate(folder, cfg, world=1, gpu=False, stage="rerank")
    assert rerank["activations_gib"] / plain["activations_gib"] == pytest.approx(4 / 3)
