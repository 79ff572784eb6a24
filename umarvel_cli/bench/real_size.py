"""A random model of the real Qwen2-VL-2B size, for the GPU benchmarks (embed, train).

The tokenizer is the one built in code for the tiny models (word-level BPE), so texts take about
as many tokens as with a real Qwen tokenizer; the vocabulary size stays the real one (embedding
memory and the LM's parameter count as in the checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def qwen2_vl_2b_config(vocab_size: int = 151_936) -> Any:
    """The published Qwen2-VL-2B-Instruct architecture (random weights)."""
    import transformers

    text = dict(
        vocab_size=vocab_size,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
    )
    vision = dict(
        depth=32,
        embed_dim=1280,
        hidden_size=1536,
        num_heads=16,
        mlp_ratio=4,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
    )
    return transformers.Qwen2VLConfig(text_config=text, vision_config=vision)


def real_size_parts(mcfg: Any | None = None) -> tuple[Any, Any, Any]:
    """(tokenizer, UmarvelConfig, model config with the tokenizer's vision token ids)."""
    from umarvel_cli.models.inputs.tokenizer import build_word_tokenizer, vision_token_ids
    from umarvel_cli.models.umarvel_config import UmarvelConfig

    ucfg = UmarvelConfig(family="qwen2-vl")
    tok = build_word_tokenizer((ucfg.instruction_start, ucfg.instruction_end, ucfg.emb_token))
    mcfg = mcfg if mcfg is not None else qwen2_vl_2b_config()
    for key, token_id in vision_token_ids(tok).items():
        setattr(mcfg, key, token_id)
    return tok, ucfg, mcfg


def build_real_size_backbone(mcfg: Any, device: Any) -> Any:
    """The random-initialised backbone in bf16, built directly on `device` (seconds on a GPU)."""
    import torch

    from umarvel_cli.models.registry import get_family

    torch.manual_seed(0)
    with torch.device(device):
        return get_family("qwen2-vl").model_cls()(mcfg).to(torch.bfloat16)


def write_real_size_model(out: Path, device: Any, mcfg: Any | None = None) -> Path:
    """A random Qwen2-VL-2B-sized model folder in bf16, loadable like a real checkpoint."""
    from umarvel_cli.models.inputs.image_processor import build_image_processor
    from umarvel_cli.models.registry import get_family

    tok, ucfg, mcfg = real_size_parts(mcfg)
    model = build_real_size_backbone(mcfg, device)
    model.save_pretrained(out)
    del model
    tok.save_pretrained(out)
    family = get_family(ucfg.family)
    build_image_processor(family, ucfg.min_pixels, ucfg.max_pixels).save_pretrained(out)
    ucfg.save(out)
    return out
