"""One item's model inputs, image tokens already expanded: what the formatter makes and the collator pads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from umarvel_cli.models.inputs.images import LazyImage


@dataclass
class ImageInput:
    """One image of an item: its patch grid and its pixels in one of three states.

    Formatted eagerly, `pixels` holds the normalised patches. With deferred pixels, `resized` holds
    the resized uint8 image (8x less memory held) and the collator cuts it. With deferred decoding,
    `lazy` names the image still on disk and the collator decodes and resizes it (unless an image
    decoded ahead filled `resized` meanwhile).
    """

    grid: tuple[int, int, int]
    pixels: np.ndarray | None = None  # float32 [t*h*w, C*T*P*P]
    resized: np.ndarray | None = None  # uint8 [H, W, C]
    lazy: LazyImage | None = None

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w


@dataclass
class VideoInput:
    """One video of an item: its patch grid (t temporal patches of h x w) and its frames.

    `frames` is the resized uint8 [t*T, H, W, C] (an odd count already padded with the last
    frame), or None while decoding is deferred: the collator then decodes `source` at `size`
    (width, height) with `sampling`. `seconds_per_patch` is the time one temporal patch spans,
    `timestamps` the middle time of each (what the family's video positions or timestamp texts use).
    """

    grid: tuple[int, int, int]
    frames: np.ndarray | None
    seconds_per_patch: float
    timestamps: tuple[float, ...]
    source: Any = None
    size: tuple[int, int] = (0, 0)
    sampling: Any = None

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w


@dataclass
class EncodedInput:
    """Token ids, spans and images of one item; several images appear in prompt order."""

    input_ids: np.ndarray  # int64 [L]
    instruction_span: tuple[int, int] | None  # [start, end) in token positions, markers included
    images: list[ImageInput] = field(default_factory=list)
    # With `pool_tokens: "content"`: [start, end) of the user turn's content (image and text, the
    # instruction span inside it); the collator pools only there. None = pool every non-pad token.
    content_span: tuple[int, int] | None = None
    videos: list[VideoInput] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_patches(self) -> int:
        return sum(im.num_patches for im in self.images) + sum(v.num_patches for v in self.videos)

    @property
    def grids(self) -> list[tuple[int, int, int]]:
        return [im.grid for im in self.images]

    @property
    def video_grids(self) -> list[tuple[int, int, int]]:
        return [v.grid for v in self.videos]
