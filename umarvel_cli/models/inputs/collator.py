"""Our own collator: pads formatted items into one batch (the stock processor needs torchvision).

It emits what transformers 5 needs for Qwen-VL (`mm_token_type_ids` whenever images are present)
plus `pool_mask`: the tokens mean pooling averages (non-pad, outside the instruction span, and
inside the item's `content_span` when the formatter set one, i.e. `pool_tokens: "content"`).
An item may hold several images: their patches and grids follow each other in prompt order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from umarvel_cli.models.inputs.encoded import EncodedInput, ImageInput
from umarvel_cli.models.inputs.positions import mrope_positions


class Collator:
    """Right-pads token ids; concatenates image patches in item order."""

    def __init__(
        self,
        pad_token_id: int,
        image_token_id: int,
        pad_to_multiple_of: int | None = None,
        patcher: Any = None,
        mrope_merge_size: int | None = None,
        raw_pixels: bool = False,
    ) -> None:
        self.pad_token_id = pad_token_id
        self.image_token_id = image_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.patcher = patcher  # patchifies items formatted with deferred pixels
        self.mrope_merge_size = mrope_merge_size  # set: also emit M-RoPE `position_ids` [3, B, L]
        # Deferred images as raw uint8 patches [N, P*P*C] (a patch embedding that folds the
        # normalisation in must consume them); a batch with precomputed pixels stays normalised.
        self.raw_pixels = raw_pixels

    def _resized(self, image: ImageInput) -> np.ndarray:
        """The image resized as uint8, decoded now when formatting deferred the decode."""
        if image.resized is not None:
            return image.resized
        if image.lazy is None:
            raise ValueError("an image with a grid has no pixels, resized image or image to load")
        return self.patcher.resize(image.lazy.load())

    def _pixels(self, images: Sequence[ImageInput]) -> np.ndarray:
        """All images' patches in one block, deferred ones cut straight into it.

        float32 normalised [N, C*T*P*P] rows, or uint8 raw [N, P*P*C] rows with `raw_pixels` (`ImagePatcher.cut_raw`).
        """
        sizes = [im.num_patches for im in images]
        deferred = any(im.pixels is None for im in images)
        if deferred and self.patcher is None:
            raise ValueError("an item has deferred pixels but the collator has no patcher")
        if self.raw_pixels and all(im.pixels is None for im in images):
            out = np.empty((sum(sizes), self.patcher.raw_patch_dim), dtype=np.uint8)
            start = 0
            for im, n in zip(images, sizes, strict=True):
                self.patcher.cut_raw(self._resized(im), out=out[start : start + n])
                start += n
            return out
        dims = {im.pixels.shape[1] for im in images if im.pixels is not None}
        if deferred:
            p = self.patcher
            dims.add(3 * p.temporal_patch_size * p.patch_size**2)
        if len(dims) != 1:
            raise ValueError(f"items disagree on the patch size: {sorted(dims)}")
        out = np.empty((sum(sizes), dims.pop()), dtype=np.float32)
        start = 0
        for im, n in zip(images, sizes, strict=True):
            if im.pixels is not None:
                out[start : start + n] = im.pixels
            else:
                self.patcher.patchify(self._resized(im), out=out[start : start + n])
            start += n
        return out

    def __call__(self, items: Sequence[EncodedInput]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        longest = max(it.length for it in items)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = np.full((len(items), longest), self.pad_token_id, dtype=np.int64)
        attention = np.zeros((len(items), longest), dtype=np.int64)
        pool = np.zeros((len(items), longest), dtype=bool)
        positions = np.zeros((3, len(items), longest), dtype=np.int64) if self.mrope_merge_size else None
        for i, it in enumerate(items):
            n = it.length
            ids[i, :n] = it.input_ids
            attention[i, :n] = 1
            if it.content_span is None:
                pool[i, :n] = True
            else:
                pool[i, it.content_span[0] : it.content_span[1]] = True
            if positions is not None:
                positions[:, i, :n] = mrope_positions(
                    it.input_ids == self.image_token_id, it.grids, self.mrope_merge_size
                )
            if it.instruction_span is not None:
                s, e = it.instruction_span
                pool[i, s:e] = False
        input_ids = torch.from_numpy(ids)
        batch: dict[str, torch.Tensor] = {
            "input_ids": input_ids,
            "attention_mask": torch.from_numpy(attention),
            "mm_token_type_ids": ((input_ids == self.image_token_id) & torch.from_numpy(attention).bool()).to(
                torch.int32
            ),
            "pool_mask": torch.from_numpy(pool),
        }
        if positions is not None:
            batch["position_ids"] = torch.from_numpy(positions)
        images = [im for it in items for im in it.images]
        if images:
            batch["pixel_values"] = torch.from_numpy(self._pixels(images))
            batch["image_grid_thw"] = torch.tensor([im.grid for im in images], dtype=torch.long)
        return batch
