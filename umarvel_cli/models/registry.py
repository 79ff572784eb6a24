"""Backbone families: which transformers classes load them, how their images are cut into patches,
their default image pixel limits and the special token strings their chat template uses.

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
class ChatTokens:
    """Special token strings of a family's chat template and vision inputs (the input pipeline reads them here)."""

    turn_start: str = "<|im_start|>"
    turn_end: str = "<|im_end|>"
    image_pad: str = "<|image_pad|>"
    video_pad: str = "<|video_pad|>"
    vision_start: str = "<|vision_start|>"
    vision_end: str = "<|vision_end|>"
    pad: str = "<|endoftext|>"

    @property
    def specials(self) -> tuple[str, ...]:
        """The chat and vision tokens a tokenizer must hold as special tokens (pad aside)."""
        return (
            self.turn_start,
            self.turn_end,
            self.vision_start,
            self.vision_end,
            self.image_pad,
            self.video_pad,
        )

    def generation_prompt(self, role: str = "assistant") -> str:
        """What `add_generation_prompt=True` appends: the opening of the next (assistant) turn."""
        return f"{self.turn_start}{role}\n"


QWEN_TOKENS = ChatTokens()


@dataclass(frozen=True)
class Family:
    """One backbone family: the model class (by name, imported lazily), its vision geometry, its
    default pixel limits (in merged image tokens, so they scale with the patch factor) and its tokens."""

    name: str
    model_type: str
    model_class: str
    config_class: str
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    # An image gets between these many merged tokens (the recipe: 4..300, i.e. 4*28*28..300*28*28
    # pixels for Qwen2-VL); umarvel.json's min_pixels/max_pixels default to them.
    min_image_tokens: int = 4
    max_image_tokens: int = 300
    tokens: ChatTokens = QWEN_TOKENS
    # How a video's tokens are laid out and timed (what the family's processor and get_rope_index do):
    # "index" one block, temporal positions 0, 1, ... (Qwen2-VL); "seconds" one block, temporal
    # positions scaled by tokens_per_second x seconds per temporal patch (Qwen2.5-VL); "timestamps"
    # one block per temporal patch, each after its "<t seconds>" text (Qwen3-VL).
    video_layout: str = "index"

    @property
    def factor(self) -> int:
        """Image sides are rounded to multiples of this (patch x merge): 28 for Qwen2/2.5-VL, 32 for Qwen3-VL."""
        return self.patch_size * self.merge_size

    @property
    def pixels_per_token(self) -> int:
        """Pixels one merged image token covers (factor squared)."""
        return self.factor**2

    @property
    def min_pixels(self) -> int:
        return self.min_image_tokens * self.pixels_per_token

    @property
    def max_pixels(self) -> int:
        return self.max_image_tokens * self.pixels_per_token

    def model_cls(self) -> type:
        import transformers

        return getattr(transformers, self.model_class)

    def config_cls(self) -> type:
        import transformers

        return getattr(transformers, self.config_class)

    @property
    def generation_class(self) -> str:
        """The family's generative class (backbone + LM head), what a reranker loads."""
        return self.model_class.removesuffix("Model") + "ForConditionalGeneration"

    def generation_cls(self) -> type:
        import transformers

        return getattr(transformers, self.generation_class)


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
        video_layout="seconds",
    ),
    # Qwen3-VL: patch 16 (factor 32, not the 28 the released port used: B20), mean/std 0.5.
    "qwen3-vl": Family(
        "qwen3-vl",
        "qwen3_vl",
        "Qwen3VLModel",
        "Qwen3VLConfig",
        16,
        2,
        2,
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        video_layout="timestamps",
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
