"""Tiny random-initialised backbones of the real transformers classes, written as normal model folders.

Tests and the demo run these on CPU in milliseconds; every command treats the folder exactly like a
real checkpoint (config.json, model.safetensors, tokenizer files, chat template, image processor
config, umarvel.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.inputs.tokenizer import build_word_tokenizer, vision_token_ids
from umarvel_cli.models.registry import TINY_PREFIX, Family, get_family, quiet_transformers
from umarvel_cli.models.umarvel_config import UmarvelConfig

HIDDEN = 64
HEADS = 4
# Weight init std. Transformers' 0.02 suits wide models; in 64/32-wide ones it makes every item's
# embedding nearly the same (cosine ~0.97 at init) and contrastive training crawls. 0.1 keeps items apart.
INIT_STD = 0.1


def _text_config(family: Family, tok: Any) -> dict[str, Any]:
    head_dim = HIDDEN // HEADS
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]}
    text: dict[str, Any] = dict(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.convert_tokens_to_ids(family.tokens.turn_start),
        eos_token_id=tok.convert_tokens_to_ids(family.tokens.turn_end),
        initializer_range=INIT_STD,
    )
    if family.name == "qwen3-vl":
        text["head_dim"] = head_dim
        rope = {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [4, 2, 2],
            "mrope_interleaved": True,
        }
    text["rope_parameters"] = rope
    return text


def _vision_config(family: Family) -> dict[str, Any]:
    if family.name == "qwen2-vl":
        return dict(
            depth=2,
            embed_dim=32,
            hidden_size=HIDDEN,
            num_heads=2,
            mlp_ratio=2,
            patch_size=family.patch_size,
            spatial_merge_size=family.merge_size,
            temporal_patch_size=family.temporal_patch_size,
            initializer_range=INIT_STD,
        )
    # Qwen2.5-VL and Qwen3-VL share the vision layout; they differ in windowing vs DeepStack extras.
    common = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        out_hidden_size=HIDDEN,
        num_heads=2,
        patch_size=family.patch_size,
        spatial_merge_size=family.merge_size,
        temporal_patch_size=family.temporal_patch_size,
        initializer_range=INIT_STD,
    )
    if family.name == "qwen2.5-vl":
        return {**common, "window_size": 56, "fullatt_block_indexes": [1]}
    return {**common, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}


def tiny_umarvel_config(family: Family, pool_tokens: str = "all") -> UmarvelConfig:
    """Defaults for a tiny model: images kept at 1..16 merged tokens so CPU runs stay fast."""
    return UmarvelConfig(
        family=family.name,
        pool_tokens=pool_tokens,
        min_pixels=family.factor**2,
        max_pixels=16 * family.factor**2,
        text_token_budget=128,
    )


KINDS = ("embedding", "reranker")


def init_tiny_model(
    backbone: str,
    out: Path,
    seed: int = 0,
    pool_tokens: str = "all",
    kind: str = "embedding",
    readout: str = "answer",
) -> Path:
    """Write a tiny random-initialised `backbone` (e.g. "tiny-qwen2-vl") as a model folder at `out`.

    `pool_tokens="content"` (what the demo uses) pools the user turn only: in a tiny model the fixed
    system prompt and chat markers otherwise outweigh a picture's few image tokens, which slows
    contrastive learning down. `kind="reranker"` writes the family's generative class (with its LM
    head) and marks umarvel.json `extra.kind` so an embedder refuses it (and a reranker an embedder).
    """
    import torch

    if not backbone.startswith(TINY_PREFIX):
        raise UmarvelError(
            f"init-model builds tiny backbones only, not {backbone!r}",
            field="--backbone",
            expected=", ".join(TINY_PREFIX + n for n in ("qwen2-vl", "qwen2.5-vl", "qwen3-vl")),
        )
    if kind not in KINDS:
        raise UmarvelError(f"unknown model kind {kind!r}", field="--kind", expected=" | ".join(KINDS))
    quiet_transformers()
    family = get_family(backbone)
    ucfg = tiny_umarvel_config(family, pool_tokens)
    if kind == "reranker":
        ucfg.attention = "causal"
        ucfg.extra["kind"] = "reranker"
        if readout != "answer":
            ucfg.extra["readout"] = readout
    tok = build_word_tokenizer((ucfg.instruction_start, ucfg.instruction_end, ucfg.emb_token))
    cfg = family.config_cls()(
        text_config=_text_config(family, tok),
        vision_config=_vision_config(family),
        **vision_token_ids(tok, family.tokens),
    )
    torch.manual_seed(seed)
    model = (family.generation_cls() if kind == "reranker" else family.model_cls())(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    build_image_processor(family, ucfg.min_pixels, ucfg.max_pixels).save_pretrained(out)
    ucfg.save(out)
    return out
