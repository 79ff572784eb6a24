"""LoRA: targets, frozen vision, adapter save/load, merge equals adapter output, temperature kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES, random_image
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models import lora
from umarvel_cli.models.embedder import Embedder
from umarvel_cli.models.umarvel_config import UmarvelConfig


def _records() -> list[Record]:
    return [Record("a", "a red dog", random_image(1), "Find an image"), Record("b", "hello world")]


def _perturb_adapters(emb: Embedder) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in emb.backbone.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_merge_equals_adapter_output_and_keeps_temperature(backbone, tiny_models, tmp_path):
    emb = Embedder.from_pretrained(tiny_models[backbone], device="cpu")
    base = emb.encode(_records())
    lora.apply_lora(emb, rank=4, alpha=8, dropout=0.0)
    trainable = [n for n, p in emb.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    np.testing.assert_allclose(emb.encode(_records()), base, atol=1e-6)  # B = 0 at init
    _perturb_adapters(emb)
    emb.log_temperature.data.fill_(-2.0)
    with_adapter = emb.encode(_records())
    assert np.abs(with_adapter - base).max() > 1e-3

    adapter_dir = lora.save_adapter(emb, tmp_path / "adapter")
    assert (adapter_dir / "adapter_config.json").is_file()
    assert UmarvelConfig.load(adapter_dir).log_temperature == pytest.approx(-2.0)

    merged_dir = lora.save_merged(emb, tmp_path / "merged")
    assert not hasattr(emb.backbone, "peft_config")
    merged = Embedder.from_pretrained(merged_dir, device="cpu")
    np.testing.assert_allclose(merged.encode(_records()), with_adapter, atol=1e-5)
    assert merged.log_temperature.item() == pytest.approx(-2.0)

    reloaded = lora.load_adapter(Embedder.from_pretrained(tiny_models[backbone], device="cpu"), adapter_dir)
    np.testing.assert_allclose(reloaded.encode(_records()), with_adapter, atol=1e-6)
    assert reloaded.log_temperature.item() == pytest.approx(-2.0)


def test_vision_tower_is_frozen_unless_asked(tiny_embedders):
    emb = tiny_embedders["tiny-qwen2-vl"]
    default = lora.lora_target_names(emb)
    assert default and all(".language_model." in f".{n}" for n in default)
    assert {n.rsplit(".", 1)[-1] for n in default} == set(lora.DEFAULT_TARGETS)
    with_vision = lora.lora_target_names(emb, train_vision=True)
    assert any(n.startswith("visual.") for n in with_vision)
    only_q = lora.lora_target_names(emb, target_modules=["q_proj"])
    assert len(only_q) == 2 and all(n.endswith("q_proj") for n in only_q)  # 2 layers


def test_lora_errors_are_one_line(tiny_models):
    emb = Embedder.from_pretrained(tiny_models["tiny-qwen2-vl"], device="cpu")
    with pytest.raises(UmarvelError, match="no LoRA adapter"):
        lora.merge_lora(emb)
    with pytest.raises(UmarvelError, match="no Linear layer"):
        lora.apply_lora(emb, 4, 8, target_modules=["nope"])
    lora.apply_lora(emb, 4, 8)
    with pytest.raises(UmarvelError, match="carries LoRA"):
        emb.save_pretrained("/nonexistent/should-not-be-written")
