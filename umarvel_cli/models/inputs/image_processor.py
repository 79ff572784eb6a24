"""The image processor every stage uses: transformers' PIL backend, built from the family and umarvel.json.

Always the PIL class (never the torchvision one, which gives different pixels), so training on a
CPU box and inference on a GPU box see identical inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from umarvel_cli.models.registry import Family


def build_image_processor(family: Family, min_pixels: int, max_pixels: int) -> Any:
    """Resize within [min_pixels, max_pixels] to multiples of the family's factor, then patchify."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=family.patch_size,
        temporal_patch_size=family.temporal_patch_size,
        merge_size=family.merge_size,
        image_mean=list(family.image_mean),
        image_std=list(family.image_std),
    )


class ImagePatcher:
    """The image processor's computation, done directly on the PIL image in float32.

    Same steps and numbers as `Qwen2VLImageProcessorPil` (smart resize to multiples of
    patch x merge within [min_pixels, max_pixels] with its resample filter, rescale, normalise,
    cut into temporal x spatial patches), without its per-call conversions between PIL and
    float64 arrays, which made it the largest preprocessing cost.
    """

    def __init__(self, processor: Any) -> None:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        self._smart_resize = smart_resize
        self.patch_size = int(processor.patch_size)
        self.merge_size = int(processor.merge_size)
        self.temporal_patch_size = int(processor.temporal_patch_size)
        self.min_pixels = int(processor.size.shortest_edge)
        self.max_pixels = int(processor.size.longest_edge)
        self.resample = processor.resample
        scale = np.float32(processor.rescale_factor)
        mean = np.asarray(processor.image_mean, dtype=np.float32)
        std = np.asarray(processor.image_std, dtype=np.float32)
        # (x * scale - mean) / std as one multiply-add per pixel
        self._mul = (scale / std).astype(np.float32)
        self._add = (-mean / std).astype(np.float32)

    def grid(self, width: int, height: int) -> tuple[int, int, int]:
        """Patch grid (t, h, w) an image of this size gets, without touching its pixels."""
        h, w = self._smart_resize(
            height, width, self.patch_size * self.merge_size, self.min_pixels, self.max_pixels
        )
        return 1, h // self.patch_size, w // self.patch_size

    def resize(self, image: Any) -> np.ndarray:
        """The RGB PIL image resized to its grid, as uint8 [H, W, C] (small: what chunks keep in memory)."""
        _, gh, gw = self.grid(image.width, image.height)
        p = self.patch_size
        return np.asarray(image.resize((gw * p, gh * p), resample=self.resample), dtype=np.uint8)

    def patchify(self, pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rescale, normalise and cut a resized uint8 [H, W, C] image into [t*h*w, C*T*P*P] float32 rows.

        `out` (a C-contiguous float32 block of that shape) is filled in place: one copy, no temporaries
        beyond the normalised image, which is what the collator uses to build a batch.
        """
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        gh, gw, c = pixels.shape[0] // p, pixels.shape[1] // p, pixels.shape[2]
        if out is None:
            out = np.empty((gh * gw, c * t * p * p), dtype=np.float32)
        x = pixels.astype(np.float32)
        x *= self._mul
        x += self._add
        src = x.reshape(gh // m, m, p, gw // m, m, p, c).transpose(0, 3, 1, 4, 6, 2, 5)  # gh gw mh mw C ph pw
        dst = out.reshape(gh // m, gw // m, m, m, c, t, p, p)
        if not np.shares_memory(dst, out):
            raise ValueError("patchify needs a C-contiguous output block")
        for k in range(t):  # the temporal copies of a still image are identical
            dst[:, :, :, :, :, k] = src
        return out

    def frame_size(self, width: int, height: int, max_pixels: int) -> tuple[int, int]:
        """(width, height) a video frame of this size is resized to: multiples of the factor, at most
        `max_pixels` (the per-frame budget) and at least the image minimum."""
        factor = self.patch_size * self.merge_size
        max_pixels = max(max_pixels, self.min_pixels)
        h, w = self._smart_resize(height, width, factor, self.min_pixels, max_pixels)
        return w, h

    def patchify_video(self, frames: np.ndarray) -> np.ndarray:
        """Rescale, normalise and cut resized uint8 frames [t*T, H, W, C] into [t*h*w, C*T*P*P] float32 rows.

        The layout of transformers' Qwen2-VL video processor: rows go temporal patch by temporal
        patch (each in `patchify`'s merge-block order), and a row holds its T consecutive frames
        per channel (C, T, P, P), where a still image repeats one frame T times.
        """
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        n, height, width, c = frames.shape
        if n % t:
            raise ValueError(f"{n} frames is not a multiple of the temporal patch {t}")
        gt, gh, gw = n // t, height // p, width // p
        out = np.empty((gt * gh * gw, c * t * p * p), dtype=np.float32)
        dst = out.reshape(gt, gh // m, gw // m, m, m, c, t, p, p)
        for f in range(n):
            x = frames[f].astype(np.float32)
            x *= self._mul
            x += self._add
            src = x.reshape(gh // m, m, p, gw // m, m, p, c).transpose(0, 3, 1, 4, 6, 2, 5)
            dst[f // t, :, :, :, :, :, f % t] = src
        return out

    @property
    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mul, add) with normalised = uint8 * mul + add (what raw patches fold in)."""
        return self._mul, self._add

    @property
    def raw_patch_dim(self) -> int:
        """Row width of `cut_raw`: one frame's P*P*C uint8 values."""
        return 3 * self.patch_size**2

    def cut_raw(self, pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Cut a resized uint8 [H, W, C] image into [h*w, P*P*C] uint8 rows, patches in `patchify`'s order.

        No rescale, no normalisation, one temporal frame: the linearised patch embedding folds those
        into its weights (`models.patch_embed`), so this is a single byte copy. Inside a row the
        image's own layout is kept (pixel rows of P*C contiguous bytes, channels interleaved): the
        weights are permuted to match once, instead of every pixel being moved to `patchify`'s
        channel-first order (3.6x slower to cut).
        """
        p, m = self.patch_size, self.merge_size
        gh, gw, c = pixels.shape[0] // p, pixels.shape[1] // p, pixels.shape[2]
        if out is None:
            out = np.empty((gh * gw, p * p * c), dtype=np.uint8)
        src = pixels.reshape(gh // m, m, p, gw // m, m, p * c).transpose(0, 3, 1, 4, 2, 5)
        dst = out.reshape(gh // m, gw // m, m, m, p, p * c)
        if not np.shares_memory(dst, out):
            raise ValueError("cut_raw needs a C-contiguous output block")
        dst[...] = src
        return out

    def __call__(self, image: Any) -> tuple[np.ndarray, tuple[int, int, int]]:
        """(pixel_values [t*h*w, C*T*P*P] float32, grid (t, h, w)) of one RGB PIL image."""
        pixels = self.resize(image)
        grid = (1, pixels.shape[0] // self.patch_size, pixels.shape[1] // self.patch_size)
        return self.patchify(pixels), grid
