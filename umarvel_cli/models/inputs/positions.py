"""Multimodal RoPE positions (M-RoPE) computed on the CPU while collating.

transformers computes them inside the forward with a Python loop that copies every row from the
GPU (`get_rope_index`); doing it in numpy here gives the same numbers with no device syncs.
Text tokens count up on all three axes; an image's merged tokens get (t, row, column) offsets from
the position where the image starts, and the text after it continues at start + max(rows, cols).
A video block is the same with t temporal patches, its temporal offsets scaled by the block's
interval where the family times them (Qwen2.5-VL: tokens_per_second x seconds per temporal patch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mrope_positions(
    is_image: np.ndarray,
    grids: Sequence[tuple[int, int, int]],
    merge_size: int,
    intervals: Sequence[float | None] | None = None,
) -> np.ndarray:
    """[3, L] positions of one unpadded sequence; `is_image` marks its vision-pad tokens, `grids`
    gives each run of them in order (`intervals`: each run's temporal step, None for 1)."""
    n = int(is_image.shape[0])
    out = np.empty((3, n), dtype=np.int64)
    edges = np.flatnonzero(np.diff(is_image.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [n]])
    pos, g = 0, 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if not is_image[s]:
            out[:, s:e] = np.arange(pos, pos + e - s)
            pos += e - s
            continue
        t, h, w = grids[g]
        interval = intervals[g] if intervals is not None else None
        g += 1
        lt, lh, lw = t, h // merge_size, w // merge_size
        if lt * lh * lw != e - s:
            raise ValueError(f"image of {e - s} tokens does not match its grid {(t, h, w)}")
        steps = np.arange(lt)
        if interval is not None:  # transformers: (arange(t) * interval).long(), in float32
            steps = (steps.astype(np.float32) * np.float32(interval)).astype(np.int64)
        tt, hh, ww = np.meshgrid(steps, np.arange(lh), np.arange(lw), indexing="ij")
        out[0, s:e] = tt.ravel() + pos
        out[1, s:e] = hh.ravel() + pos
        out[2, s:e] = ww.ravel() + pos
        pos += max(h, w) // merge_size
    return out
