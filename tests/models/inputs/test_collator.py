"""The collator: right padding, attention and pooling masks, mm_token_type_ids, image patches."""

from __future__ import annotations

import numpy as np
import torch

from umarvel_cli.models.inputs.collator import Collator
from umarvel_cli.models.inputs.encoded import EncodedInput, ImageInput

PAD, IMG = 0, 9


def _item(ids, span=None, patches=0):
    pv = np.arange(patches * 4, dtype=np.float32).reshape(patches, 4) if patches else None
    images = [ImageInput((1, 2, patches // 2), pixels=pv)] if patches else []
    return EncodedInput(np.asarray(ids, dtype=np.int64), span, images)


def test_padding_masks_and_images():
    items = [
        _item([5, 6, IMG, 7], span=(1, 2), patches=4),
        _item([5, 6]),
        _item([5, IMG, IMG, 6, 7, 8], patches=8),
    ]
    b = Collator(PAD, IMG)(items)
    assert b["input_ids"].tolist() == [[5, 6, IMG, 7, 0, 0], [5, 6, 0, 0, 0, 0], [5, IMG, IMG, 6, 7, 8]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1] * 6]
    assert b["pool_mask"].tolist() == [
        [True, False, True, True, False, False],
        [True, True, False, False, False, False],
        [True] * 6,
    ]
    assert b["mm_token_type_ids"].tolist() == [[0, 0, 1, 0, 0, 0], [0] * 6, [0, 1, 1, 0, 0, 0]]
    assert b["image_grid_thw"].tolist() == [[1, 2, 2], [1, 2, 4]]
    assert b["pixel_values"].shape == (12, 4)
    assert torch.equal(b["pixel_values"][4:], torch.from_numpy(items[2].images[0].pixels))


def test_text_only_batch_has_no_pixels_and_pad_to_multiple():
    b = Collator(PAD, IMG, pad_to_multiple_of=8)([_item([1, 2, 3])])
    assert "pixel_values" not in b and b["input_ids"].shape == (1, 8)
    assert b["attention_mask"].sum() == 3 and not b["mm_token_type_ids"].any()


def test_content_span_limits_the_pool_mask_and_still_drops_the_instruction():
    ids = [1, 2, 5, 6, IMG, 7, 3, 4]
    plain = EncodedInput(np.asarray(ids, dtype=np.int64), (2, 4))
    content = EncodedInput(np.asarray(ids, dtype=np.int64), (2, 4), content_span=(2, 6))
    b = Collator(PAD, IMG)([plain, content, _item([1, 2])])
    assert b["pool_mask"].tolist() == [
        [True, True, False, False, True, True, True, True],
        [False, False, False, False, True, True, False, False],
        [True, True, False, False, False, False, False, False],
    ]
