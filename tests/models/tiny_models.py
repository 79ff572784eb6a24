"""Tiny model folders shared by the model and embedding tests (built once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

TINY_BACKBONES = ("tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-qwen3-vl")


def tiny_model_dir(base: Path, backbone: str) -> Path:
    """Build (once) and return the folder of a tiny backbone under `base`."""
    from umarvel_cli.models.tiny import init_tiny_model

    out = base / backbone
    if not (out / "umarvel.json").is_file():
        init_tiny_model(backbone, out, seed=0)
    return out


def random_image(seed: int, width: int = 60, height: int = 44) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(height, width, 3) * 255).astype("uint8"))


def assert_positions_are_transformers(emb: Any, batch: dict) -> None:
    """The collator's M-RoPE `position_ids` equal transformers' `get_rope_index` on every real token."""
    import torch

    base = emb.backbone.get_base_model() if hasattr(emb.backbone, "get_base_model") else emb.backbone
    videos = {k: batch[k] for k in ("video_grid_thw", "second_per_grid_ts") if k in batch}
    ref, _ = base.get_rope_index(
        batch["input_ids"],
        image_grid_thw=batch.get("image_grid_thw"),
        attention_mask=batch["attention_mask"],
        mm_token_type_ids=batch["mm_token_type_ids"],
        **videos,
    )
    mask = batch["attention_mask"].bool()
    for axis in range(3):
        assert torch.equal(batch["position_ids"][axis][mask], ref[axis][mask])
