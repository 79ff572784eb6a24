"""Our own collator: pads formatted items into one batch (the stock processor needs torchvision).

It emits what transformers 5 needs for Qwen-VL (`mm_token_type_ids` whenever images are present)
plus `pool_mask`: the tokens mean pooling averages (non-pad, outside the instruction span, and
inside the item's `content_span` when the formatter set one, i.e. `pool_tokens: "content"`).
An item may hold several images: their patches and grids follow each other in prompt order.
Videos go beside them: `pixel_values_videos`, `video_grid_thw` (and `second_per_grid_ts` for a
family that times its video positions), their tokens typed 2 in `mm_token_type_ids`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from umarvel_cli.models.inputs.encoded import EncodedInput, ImageInput, VideoInput
from umarvel_cli.models.inputs.positions import mrope_positions
from umarvel_cli.models.inputs.video import video_frames_array

# what the backbone takes from a collated batch (the rest, e.g. `pool_mask`, is ours)
MODEL_INPUT_KEYS = (
    "input_ids",
    "attention_mask",
    "pixel_values",
    "image_grid_thw",
    "mm_token_type_ids",
    "pixel_values_videos",
    "video_grid_thw",
    "second_per_grid_ts",
)


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
        video_token_id: int | None = None,
        video_layout: str = "index",
        tokens_per_second: float | None = None,
    ) -> None:
        self.pad_token_id = pad_token_id
        self.image_token_id = image_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.patcher = patcher  # patchifies items formatted with deferred pixels
        self.mrope_merge_size = mrope_merge_size  # set: also emit M-RoPE `position_ids` [3, B, L]
        # Deferred images as raw uint8 patches [N, P*P*C] (a patch embedding that folds the
        # normalisation in must consume them); a batch with precomputed pixels stays normalised.
        self.raw_pixels = raw_pixels
        self.video_token_id = video_token_id
        self.video_layout = video_layout  # the family's (models.registry.Family.video_layout)
        self.tokens_per_second = tokens_per_second  # layout "seconds": the vision config's

    def _frames(self, video: VideoInput) -> np.ndarray:
        """A video's resized frames, decoded now when formatting deferred the decode."""
        if video.frames is not None:
            return video.frames
        p = self.patcher
        frames = video_frames_array(
            video.source, video.size, p.resample, p.temporal_patch_size, video.sampling
        )
        if frames.shape[0] != video.grid[0] * p.temporal_patch_size:
            raise ValueError(
                f"{video.source}: decoded {frames.shape[0]} frames, its headers promised {video.grid}"
            )
        return frames

    def _vision_runs(self, item: EncodedInput) -> tuple[np.ndarray, list, list]:
        """(vision-token mask, grid and temporal interval of each run of vision tokens in order),
        images and videos each taken in prompt order as transformers' get_rope_index takes them."""
        ids = item.input_ids
        is_image = ids == self.image_token_id
        if not item.videos:
            return is_image, item.grids, [None] * len(item.images)
        is_video = ids == self.video_token_id
        vision = is_image | is_video
        starts = np.flatnonzero(np.diff(vision.astype(np.int8), prepend=0) == 1)
        images, videos = iter(item.images), iter(self._video_runs(item.videos))
        grids, intervals = [], []
        for s in starts.tolist():
            grid, interval = (next(images).grid, None) if is_image[s] else next(videos)
            grids.append(grid)
            intervals.append(interval)
        return vision, grids, intervals

    def _video_runs(self, videos: Sequence[VideoInput]) -> list[tuple[tuple[int, int, int], float | None]]:
        runs = []
        for v in videos:
            t, h, w = v.grid
            if self.video_layout == "timestamps":  # one run per temporal patch, between timestamp texts
                runs += [((1, h, w), None)] * t
            elif self.video_layout == "seconds":
                runs.append(
                    (v.grid, float(np.float32(v.seconds_per_patch) * np.float32(self.tokens_per_second)))
                )
            else:
                runs.append((v.grid, None))
        return runs

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
        clips = [v for it in items for v in it.videos]
        if clips and self.video_token_id is None:
            raise ValueError("a batch with videos needs the collator's video_token_id")
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
                vision, grids, intervals = self._vision_runs(it)
                positions[:, i, :n] = mrope_positions(vision, grids, self.mrope_merge_size, intervals)
            if it.instruction_span is not None:
                s, e = it.instruction_span
                pool[i, s:e] = False
        input_ids = torch.from_numpy(ids)
        types = ((input_ids == self.image_token_id) & torch.from_numpy(attention).bool()).to(torch.int32)
        if clips:
            types[(input_ids == self.video_token_id) & torch.from_numpy(attention).bool()] = 2
        batch: dict[str, torch.Tensor] = {
            "input_ids": input_ids,
            "attention_mask": torch.from_numpy(attention),
            "mm_token_type_ids": types,
            "pool_mask": torch.from_numpy(pool),
        }
        if positions is not None:
            batch["position_ids"] = torch.from_numpy(positions)
        images = [im for it in items for im in it.images]
        if images:
            batch["pixel_values"] = torch.from_numpy(self._pixels(images))
            batch["image_grid_thw"] = torch.tensor([im.grid for im in images], dtype=torch.long)
        if clips:
            if self.patcher is None:
                raise ValueError("a batch with videos needs the collator's patcher")
            batch["pixel_values_videos"] = torch.from_numpy(
                np.concatenate([self.patcher.patchify_video(self._frames(v)) for v in clips])
            )
            batch["video_grid_thw"] = torch.tensor([v.grid for v in clips], dtype=torch.long)
            if self.video_layout == "seconds":
                batch["second_per_grid_ts"] = torch.tensor(
                    [v.seconds_per_patch for v in clips], dtype=torch.float32
                )
        return batch


def collator_for(
    tokenizer: Any, formatter: Any, family: Any, backbone_config: Any, mrope: bool, raw_pixels: bool = False
) -> Collator:
    """The collator of a loaded model: its pad and vision tokens, its family's video layout, M-RoPE
    positions when `mrope`, and (Qwen2.5-VL) the vision config's tokens per second."""
    return Collator(
        tokenizer.pad_token_id,
        formatter.image_pad_id,
        patcher=formatter.patcher,
        mrope_merge_size=family.merge_size if mrope else None,
        raw_pixels=raw_pixels,
        video_token_id=formatter.video_pad_id,
        video_layout=family.video_layout,
        tokens_per_second=getattr(getattr(backbone_config, "vision_config", None), "tokens_per_second", None),
    )
