"""Our ImagePatcher gives the stock PIL image processor's grids and pixels (all families, odd sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from umarvel_cli.models.inputs.image_processor import ImagePatcher, build_image_processor
from umarvel_cli.models.registry import get_family


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_patcher_equals_the_stock_processor(family):
    fam = get_family(family)
    stock = build_image_processor(fam, 4 * fam.factor**2, 300 * 28 * 28)
    patcher = ImagePatcher(stock)
    for i, (w, h) in enumerate([(5, 5), (64, 64), (123, 457), (640, 480), (1000, 30), (2000, 1500)]):
        img = Image.fromarray(np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8))
        ref = stock(images=[img], return_tensors="np")
        pixels, grid = patcher(img)
        assert grid == tuple(int(x) for x in ref["image_grid_thw"][0]) == patcher.grid(w, h)
        assert pixels.dtype == np.float32 and pixels.shape == ref["pixel_values"].shape
        np.testing.assert_allclose(pixels, ref["pixel_values"], atol=1e-5)
        assert grid[1] * grid[2] * fam.patch_size**2 <= 300 * 28 * 28


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen3-vl"])
def test_raw_cut_is_the_first_frame_of_patchify_before_normalising(family):
    fam = get_family(family)
    patcher = ImagePatcher(build_image_processor(fam, 4 * fam.factor**2, 300 * 28 * 28))
    pixels = patcher.resize(
        Image.fromarray(np.random.default_rng(7).integers(0, 255, (97, 211, 3), dtype=np.uint8))
    )
    p, t = fam.patch_size, fam.temporal_patch_size
    normalised = patcher.patchify(pixels).reshape(-1, 3, t, p, p)
    raw = patcher.cut_raw(pixels)
    assert (
        raw.dtype == np.uint8
        and raw.shape == (normalised.shape[0], p * p * 3)
        and raw.shape[1] == patcher.raw_patch_dim
    )
    mul, add = patcher.normalization
    channel_first = raw.reshape(-1, p, p, 3).transpose(0, 3, 1, 2)  # rows are P x P pixels of C bytes
    rebuilt = channel_first.astype(np.float32) * mul[:, None, None] + add[:, None, None]
    for k in range(t):
        np.testing.assert_allclose(normalised[:, :, k], rebuilt, atol=1e-6)
    block = np.zeros((raw.shape[0] + 5, raw.shape[1]), dtype=np.uint8)  # what the collator fills
    patcher.cut_raw(pixels, out=block[2 : 2 + raw.shape[0]])
    assert np.array_equal(block[2 : 2 + raw.shape[0]], raw) and not block[:2].any() and not block[-3:].any()
