"""Tiny model folders shared by the model and embedding tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

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
