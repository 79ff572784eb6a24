"""Backbone families: which transformers classes load them and how their images are cut into patches.

We use transformers' own model classes (no vendored modelling files). A family is named by the
`umarvel.json` of a folder, or guessed from `config.json`'s `model_type` for a plain checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from umarvel_cli.errors import UmarvelError

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Family:
    """One backbone family: the model class (by name, imported lazily) and its vision geometry."""

    name: str
    model_type: str
    model_class: str
    config_class: str
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @property
    def factor(self) -> int:
        """Image sides are rounded to multiples of this (patch x merge): 28 for Qwen2/2.5-VL, 32 for Qwen3-VL."""
        return self.patch_size * self.merge_size

    def model_cls(self) -> type:
        import transformers

        return getattr(transformers, self.model_class)

    def config_cls(self) -> type:
        import transformers

        return getattr(transformers, self.config_class)


FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family(
        "qwen2-vl", "qwen2_vl", "Qwen2VLModel", "Qwen2VLConfig", 14, 2, 2, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    ),
    "qwen2.5-vl": Family(
        "qwen2.5-vl",
        "qwen2_5_vl",
        "Qwen2_5_VLModel",
        "Qwen2_5_VLConfig",
        14,
        2,
        2,
        OPENAI_CLIP_MEAN,
        OPENAI_CLIP_STD,
    ),
    # Qwen3-VL: patch 16 (factor 32, not the 28 the released port used: B20), mean/std 0.5.
    "qwen3-vl": Family(
        "qwen3-vl", "qwen3_vl", "Qwen3VLModel", "Qwen3VLConfig", 16, 2, 2, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    ),
}
TINY_PREFIX = "tiny-"
BACKBONES = tuple(FAMILIES) + tuple(TINY_PREFIX + name for name in FAMILIES)


def get_family(name: str) -> Family:
    key = name.removeprefix(TINY_PREFIX)
    if key not in FAMILIES:
        raise UmarvelError(
            f"unknown backbone family {name!r}", field="family", expected=" | ".join(BACKBONES)
        )
    return FAMILIES[key]


def family_from_model_type(model_type: str, file: Path | None = None) -> Family:
    for fam in FAMILIES.values():
        if fam.model_type == model_type:
            return fam
    raise UmarvelError(
        f"model_type {model_type!r} is not a supported backbone",
        file=file,
        field="model_type",
        expected=", ".join(f.model_type for f in FAMILIES.values()),
    )


def detect_family(folder: Path) -> Family:
    """Family of a plain Hugging Face folder (no umarvel.json), from its config.json."""
    cfg = folder / "config.json"
    try:
        model_type = json.loads(cfg.read_text()).get("model_type", "")
    except FileNotFoundError as e:
        raise UmarvelError("not a model folder (no config.json)", file=folder) from e
    return family_from_model_type(model_type, cfg)


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPU, fp32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def attention_implementation(device: torch.device) -> str:
    """flash_attention_2 on GPU when the package is installed, else SDPA."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def quiet_transformers() -> None:
    """No weight-loading progress bars or info logs from transformers on our stderr."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
