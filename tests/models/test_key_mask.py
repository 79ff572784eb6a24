"""The broadcast [B, 1, 1, L] key mask of padded bidirectional batches equals transformers' own mask."""

from __future__ import annotations

import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES, random_image
from umarvel_cli.data.records import Record


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_key_mask_gives_transformers_hidden_states_on_real_tokens(backbone, tiny_embedders):
    emb = tiny_embedders[backbone]
    batch = emb.prepare([Record("a", "short"), Record("b", "a much longer text " * 6, random_image(4))])
    inputs = emb._model_inputs(batch)
    assert inputs["attention_mask"].shape == (2, 1, 1, batch["input_ids"].shape[1])
    stock = dict(inputs, attention_mask=batch["attention_mask"])  # transformers builds its 4-D mask
    with torch.inference_mode():
        fast = emb.backbone(**inputs).last_hidden_state
        ref = emb.backbone(**stock).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(fast[real], ref[real], atol=1e-5, rtol=1e-5)


def test_causal_attention_keeps_the_two_dimensional_mask(tiny_models):
    from umarvel_cli.models.embedder import Embedder

    emb = Embedder.from_pretrained(tiny_models["tiny-qwen2-vl"], device="cpu", attention="causal")
    batch = emb.prepare([Record("a", "short"), Record("b", "a much longer text")])
    assert emb._model_inputs(batch)["attention_mask"].shape == batch["attention_mask"].shape
