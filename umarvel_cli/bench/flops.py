"""Model FLOPs of a Qwen-VL forward from its config and the real sequence lengths, and MFU.

Matrix multiplies only (norms, rotary, softmax and activations are a rounding error): every weight
matrix costs 2 FLOPs per parameter per token, and attention adds 2 x width per query-key pair for
the scores and 2 x width for the weighted values, over each sequence's (or image's) real length.
The token embedding is a lookup (no FLOPs) and retrieval never runs the LM head. A backward pass is
counted as twice the forward (`TRAIN_FACTOR`): the usual 6 x params x tokens of training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Dense bf16 peak FLOP/s by device name substring (vendor datasheets, no sparsity), for MFU.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
TRAIN_FACTOR = 3.0  # forward + backward (twice the forward)


def _get(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    return default


def lm_params_per_layer(text: Any) -> int:
    """Weights of one decoder layer: q, k, v, o projections and the gated MLP (3 matrices)."""
    h, heads = text.hidden_size, text.num_attention_heads
    head_dim = _get(text, "head_dim", default=h // heads)
    kv = _get(text, "num_key_value_heads", default=heads)
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2  # q and o, k and v
    return attention + 3 * h * text.intermediate_size


def lm_flops(text: Any, lengths: Iterable[int]) -> float:
    """Forward FLOPs of the language model over sequences of these real lengths (bidirectional)."""
    lengths = [int(n) for n in lengths]
    width = text.num_attention_heads * _get(
        text, "head_dim", default=text.hidden_size // text.num_attention_heads
    )
    per_token = 2.0 * lm_params_per_layer(text)
    pairs = sum(n * n for n in lengths)
    return text.num_hidden_layers * (per_token * sum(lengths) + 4.0 * width * pairs)


def vision_block_params(vision: Any) -> int:
    """Weights of one vision block: qkv, proj, and the MLP (2 matrices; 3 when gated, Qwen2.5-VL)."""
    d = _get(vision, "embed_dim", "hidden_size")
    intermediate = _get(vision, "intermediate_size", default=None)
    if intermediate is None:  # Qwen2-VL: fc1/fc2 of width mlp_ratio x d
        return 4 * d * d + 2 * d * int(d * vision.mlp_ratio)
    gated = "qwen2_5" in getattr(vision, "model_type", "")  # SwiGLU gate, up, down
    return 4 * d * d + (3 if gated else 2) * d * intermediate


def vision_flops(vision: Any, grids: Iterable[tuple[int, int, int]]) -> float:
    """Forward FLOPs of the vision tower over images of these (t, h, w) patch grids.

    Patch embedding, the blocks (attention within each image; Qwen2.5-VL's windowed blocks within
    windows of (window_size / patch_size)^2 patches, edge windows counted full), and the patch
    merger(s) (Qwen3-VL adds one per deepstack layer).
    """
    d = _get(vision, "embed_dim", "hidden_size")
    p, tp = vision.patch_size, vision.temporal_patch_size
    channels = _get(vision, "in_channels", "in_chans", default=3)
    merge = vision.spatial_merge_size
    out_dim = _get(vision, "out_hidden_size", default=None) or vision.hidden_size
    sizes = [int(t) * int(h) * int(w) for t, h, w in grids]
    patches = sum(sizes)
    full_blocks = getattr(vision, "fullatt_block_indexes", None)
    window = None
    if full_blocks is not None and getattr(vision, "window_size", None):
        window = (vision.window_size // p) ** 2
    flops = 2.0 * channels * tp * p * p * d * patches  # patch embedding
    flops += vision.depth * 2.0 * vision_block_params(vision) * patches
    for block in range(vision.depth):
        span = (lambda n: n) if window is None or block in full_blocks else (lambda n: min(n, window))
        flops += sum(4.0 * d * n * span(n) for n in sizes)
    mergers = 1 + len(getattr(vision, "deepstack_visual_indexes", None) or [])
    merged = patches / (merge * merge)
    wide = d * merge * merge
    flops += mergers * 2.0 * merged * (wide * wide + wide * out_dim)
    return flops


def model_flops(config: Any, lengths: Iterable[int], grids: Iterable[tuple[int, int, int]] = ()) -> float:
    """Forward FLOPs of a Qwen-VL model (`config` with `text_config` and `vision_config`)."""
    return lm_flops(config.text_config, lengths) + vision_flops(config.vision_config, grids)


def peak_bf16(device_name: str) -> float | None:
    """The card's dense bf16 peak FLOP/s, None when unknown (or a CPU)."""
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def flop_rate_text(flops: float, seconds: float, device_name: str) -> tuple[float | None, str]:
    """(MFU or None, a short text): MFU against the card's bf16 peak, the FLOP rate alone elsewhere."""
    rate = flops / seconds
    peak = peak_bf16(device_name)
    if peak is None:
        return None, f"{rate / 1e9:,.1f} GFLOP/s"
    return rate / peak, f"{rate / 1e12:,.1f} TFLOP/s, MFU {rate / peak:.1%}"
