"""The matmul patch embedding (normalised or raw uint8 patches) equals transformers' Conv3d on every family."""

from __future__ import annotations

import pytest
import torch

from tests.kernels.conftest import ON_GPU
from tests.models.tiny_models import TINY_BACKBONES, random_image
from umarvel_cli.models import patch_embed
from umarvel_cli.models.patch_embed import (
    RawPatches,
    accepts_raw_patches,
    as_raw_patches,
    linearize_patch_embed,
    restore_patch_embed,
    set_raw_normalization,
)

# the raw path also runs on CUDA; the device check (UMARVEL_TEST_ON_GPU=1) compares it there
DEVICES = ["cpu", "cuda"] if ON_GPU else ["cpu"]


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


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_raw_uint8_patches_equal_normalised_patches_through_the_conv3d(backbone, tiny_models):
    """Folding rescale, normalisation and the temporal copies into the weights changes nothing."""
    from umarvel_cli.models.inputs.image_processor import ImagePatcher, build_image_processor
    from umarvel_cli.models.registry import get_family

    fam = get_family(backbone)
    model = fam.model_cls().from_pretrained(tiny_models[backbone])
    pe = model.visual.patch_embed
    with torch.no_grad():
        pe.proj.weight.normal_(std=0.05)
        if pe.proj.bias is not None:
            pe.proj.bias.normal_()
    patcher = ImagePatcher(build_image_processor(fam, 4 * fam.factor**2, 64 * fam.factor**2))
    pixels = patcher.resize(random_image(3, 150, 97))
    normalised = torch.from_numpy(patcher.patchify(pixels))
    raw = torch.from_numpy(patcher.cut_raw(pixels))
    assert raw.dtype == torch.uint8 and raw.shape == (normalised.shape[0], normalised.shape[1] // 2)
    with torch.inference_mode():
        stock = pe(normalised)
    assert not accepts_raw_patches(model)
    assert linearize_patch_embed(model) and set_raw_normalization(model, *patcher.normalization)
    assert accepts_raw_patches(model)
    with torch.inference_mode():
        fast = pe(raw.float())  # the model casts pixel_values to its dtype before the patch embedding
        again = pe(normalised)  # normalised rows still take the plain matmul
    torch.testing.assert_close(fast, stock, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, stock, atol=1e-5, rtol=1e-5)
    restore_patch_embed(model)
    assert not accepts_raw_patches(model)


@pytest.mark.parametrize("device", DEVICES)
def test_raw_patches_pass_the_models_cast_and_are_converted_in_blocks(device, tiny_models, monkeypatch):
    """The model casts pixel_values to its dtype before the patch embedding; wrapped uint8 rows pass
    that cast unchanged and are converted a block at a time on CPU (at once on a GPU), with the same
    result as one conversion."""
    from umarvel_cli.models.inputs.image_processor import ImagePatcher, build_image_processor
    from umarvel_cli.models.registry import get_family

    fam = get_family("qwen2-vl")
    model = fam.model_cls().from_pretrained(tiny_models["tiny-qwen2-vl"]).to(device)
    pe = model.visual.patch_embed
    patcher = ImagePatcher(build_image_processor(fam, 4 * fam.factor**2, 64 * fam.factor**2))
    raw = torch.from_numpy(patcher.cut_raw(patcher.resize(random_image(5, 150, 97)))).to(device)
    wrapped = as_raw_patches(raw)
    assert isinstance(wrapped, RawPatches) and wrapped.type(torch.float32) is wrapped
    assert wrapped.type() == ("torch.ByteTensor" if device == "cpu" else "torch.cuda.ByteTensor")
    floats = raw.float()
    assert as_raw_patches(floats) is floats  # only uint8 rows are wrapped
    assert linearize_patch_embed(model) and set_raw_normalization(model, *patcher.normalization)
    monkeypatch.setattr(patch_embed, "RAW_BLOCK_ROWS", 7)
    assert raw.shape[0] % 7 != 0  # several blocks and a short last one
    with torch.inference_mode():
        blocks = pe(wrapped)
        whole = pe(floats)
    assert type(blocks) is torch.Tensor and blocks.dtype == torch.float32
    torch.testing.assert_close(blocks, whole, atol=1e-5, rtol=1e-5)
