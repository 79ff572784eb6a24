"""Our own collator: pads formatted items into one batch (the stock processor needs torchvision).

It emits what transformers 5 needs for Qwen-VL (`mm_token_type_ids` whenever images are present)
plus `pool_mask`: the tokens mean pooling averages (non-pad, outside the instruction span, and
inside the item's `content_span` when the formatter set one, i.e. `pool_tokens: "content"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from umarvel_cli.data.formatter import EncodedInput
from umarvel_cli.models.positions import mrope_positions


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

    def _resized(self, it: EncodedInput) -> np.ndarray:
        """The item's resized uint8 image, decoded now when formatting deferred the decode."""
        if it.resized is not None:
            return it.resized
        if it.lazy is None:
            raise ValueError("an item with an image grid has no pixels, resized image or image to load")
        return self.patcher.resize(it.lazy.load())

    def _pixels(self, items: Sequence[EncodedInput]) -> np.ndarray:
        """All items' patches in one block, deferred ones cut straight into it.

        float32 normalised [N, C*T*P*P] rows, or uint8 raw [N, P*P*C] rows with `raw_pixels` (`ImagePatcher.cut_raw`).
        """
        sizes = [it.num_patches for it in items]
        deferred = any(it.pixel_values is None for it in items)
        if deferred and self.patcher is None:
            raise ValueError("an item has deferred pixels but the collator has no patcher")
        if self.raw_pixels and all(it.pixel_values is None for it in items):
            out = np.empty((sum(sizes), self.patcher.raw_patch_dim), dtype=np.uint8)
            start = 0
            for it, n in zip(items, sizes, strict=True):
                self.patcher.cut_raw(self._resized(it), out=out[start : start + n])
                start += n
            return out
        dims = {it.pixel_values.shape[1] for it in items if it.pixel_values is not None}
        if deferred:
            p = self.patcher
            dims.add(3 * p.temporal_patch_size * p.patch_size**2)
        if len(dims) != 1:
            raise ValueError(f"items disagree on the patch size: {sorted(dims)}")
        out = np.empty((sum(sizes), dims.pop()), dtype=np.float32)
        start = 0
        for it, n in zip(items, sizes, strict=True):
            if it.pixel_values is not None:
                out[start : start + n] = it.pixel_values
            else:
                self.patcher.patchify(self._resized(it), out=out[start : start + n])
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
                grids = [it.image_grid_thw] if it.image_grid_thw is not None else []
                positions[:, i, :n] = mrope_positions(
                    it.input_ids == self.image_token_id, grids, self.mrope_merge_size
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
        with_image = [it for it in items if it.image_grid_thw is not None]
        if with_image:
            batch["pixel_values"] = torch.from_numpy(self._pixels(with_image))
            batch["image_grid_thw"] = torch.tensor([it.image_grid_thw for it in with_image], dtype=torch.long)
        return batch
