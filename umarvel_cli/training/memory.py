"""The dry run's memory estimate per device: weights, trainable state, activations of one forward."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from umarvel_cli.models.registry import Family, detect_family, get_family
from umarvel_cli.models.umarvel_config import UmarvelConfig
from umarvel_cli.training.config import TrainConfig

TEXT_TOKENS = 128  # text tokens assumed per sequence, beside one full image


def safetensors_params(model_dir: Path) -> int:
    """Parameters in the folder's safetensors files, read from their headers only."""
    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total


def image_tokens(model_dir: Path, cap: int | None = None) -> int:
    """LLM tokens of one image at the folder's max_pixels (or `cap`, when lower): one per (factor x
    factor) merged patch, with the family's factor (28 for Qwen2/2.5-VL, 32 for Qwen3-VL)."""
    if UmarvelConfig.exists(model_dir):
        ucfg = UmarvelConfig.load(model_dir)
        family: Family = get_family(ucfg.family)
    else:
        family = detect_family(model_dir)
        ucfg = UmarvelConfig(family=family.name)
    pixels = min(ucfg.max_pixels, cap) if cap is not None else ucfg.max_pixels  # type: ignore[type-var]
    return pixels // (family.factor * family.factor)


def memory_estimate(
    model_dir: Path, cfg: TrainConfig, world: int, gpu: bool, stage: str = ""
) -> dict[str, float]:
    """Rough GiB per device: weights, trainable state (grads + AdamW), activations of one forward.

    Activations use Korthikanti et al.'s per-layer s·b·h·34 bytes (half precision, no checkpointing)
    or 2·s·b·h per layer plus one layer with checkpointing; sequences assume ~128 text tokens plus a
    full image at max_pixels (capped by the config's max_image_pixels). A query brings a positive and
    its hard negatives, or (distill) its list of distill_topk candidates, or (rerank) two prompts each
    holding a query and a candidate (counted as four sequences). An estimate, not a promise.
    """
    config = json.loads((model_dir / "config.json").read_text())
    text = config.get("text_config", config)
    h = int(text["hidden_size"])
    layers = int(text["num_hidden_layers"])
    inter = int(text.get("intermediate_size", 4 * h))
    heads = int(text["num_attention_heads"])
    kv = int(text.get("num_key_value_heads", heads)) * int(text.get("head_dim") or h // heads)
    params = safetensors_params(model_dir)
    weight_bytes = 2 if gpu and cfg.lora else 4
    trainable = cfg.lora_rank * (9 * h + 2 * kv + 3 * inter) * layers if cfg.lora else params
    per_device = cfg.batch_size // world // cfg.grad_accum
    per_forward = min(cfg.chunk_size, per_device) if cfg.chunk_size else per_device
    per_query = {"distill": 1 + cfg.distill_topk, "rerank": 4}.get(stage, 2 + cfg.hard_negatives)
    seqs = per_forward * per_query if not cfg.chunk_size else per_forward
    tokens = TEXT_TOKENS + image_tokens(model_dir, cfg.max_image_pixels)
    act_bytes = 2 if gpu and cfg.bf16 else 4
    per_layer = tokens * seqs * h * act_bytes
    activations = per_layer * (2 * layers + 17) if cfg.gradient_checkpointing else per_layer * 17 * layers
    gib = 1024**3
    est = {
        "weights_gib": params * weight_bytes / gib,
        "trainable_params": float(trainable),
        "grads_and_adamw_gib": trainable * 12 / gib,
        "activations_gib": activations / gib,
    }
    est["total_gib"] = est["weights_gib"] + est["grads_and_adamw_gib"] + est["activations_gib"]
    return est
