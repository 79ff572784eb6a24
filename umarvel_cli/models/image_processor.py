"""The image processor every stage uses: transformers' PIL backend, built from the family and umarvel.json.

Always the PIL class (never the torchvision one, which gives different pixels), so training on a
CPU box and inference on a GPU box see identical inputs.
"""

from __future__ import annotations

from typing import Any

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
