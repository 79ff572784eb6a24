"""M-RoPE positions from the collator equal transformers' get_rope_index (all families, padded batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES, assert_positions_are_transformers, random_image
from umarvel_cli.data.records import Record
from umarvel_cli.models.inputs.positions import mrope_positions


def test_text_then_image_then_text():
    is_image = np.array([0, 0, 1, 1, 1, 1, 1, 1, 0], dtype=bool)  # grid (1, 4, 6), merge 2 -> 2 x 3 tokens
    pos = mrope_positions(is_image, [(1, 4, 6)], 2)
    assert pos[:, :2].tolist() == [[0, 1]] * 3
    assert pos[0, 2:8].tolist() == [2] * 6
    assert pos[1, 2:8].tolist() == [2, 2, 2, 3, 3, 3]
    assert pos[2, 2:8].tolist() == [2, 3, 4, 2, 3, 4]
    assert pos[:, 8].tolist() == [5, 5, 5]  # 2 + max(4, 6) // 2
    with pytest.raises(ValueError, match="does not match its grid"):
        mrope_positions(is_image, [(1, 4, 4)], 2)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_collator_positions_equal_get_rope_index(backbone, tiny_embedders):
    emb = tiny_embedders[backbone]
    recs = [
        Record("a", "a caption", random_image(1, 90, 60), "Find it"),
        Record("b", "only text here, longer than the others so the batch pads"),
        Record("c", None, random_image(2, 40, 120)),
    ]
    batch = emb.prepare(recs)
    assert "position_ids" in batch and batch["position_ids"].shape == (3, 3, batch["input_ids"].shape[1])
    assert_positions_are_transformers(emb, batch)
    # and the model output is the same as letting transformers compute them
    with torch.inference_mode():
        ours = emb(batch)
        theirs = emb({k: v for k, v in batch.items() if k != "position_ids"})
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
