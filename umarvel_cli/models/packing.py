"""Sequence packing: a batch's sequences concatenated into one row, no padding.

Padding costs compute in every layer of the language model; a packed row holds only real tokens.
`pack_batch` turns the collator's padded batch into a packed one (on the CPU, while collating, so
the GPU sees no syncs); `packed_model_inputs` gives the backbone the row with attention kept inside
each sequence; `unpack_hidden` puts the row's hidden states back into the padded layout so pooling
(`models/pooling.py`) is the padded path's own code, per sequence, with the same numbers.

Attention stays inside each sequence: with flash-attention (installed on a GPU) its variable-length
kernels find the boundaries where the text positions restart at 0 (transformers' packed-input
convention for Qwen-VL: position_ids [4, 1, T], the text positions first, then the three M-RoPE
axes, and no mask; `cu_seq_lens_*` keywords would also reach the vision tower, which sets its own);
otherwise SDPA gets a block-diagonal boolean [1, 1, T, T] mask, which transformers uses as given
(lower-triangular within each block when umarvel.json says causal). Positions are each sequence's own (the collator's M-RoPE positions, or
0.. per sequence when `position_ids` is "sequential"). The vision tower already takes all images
of a batch in one call; the packed row keeps the collator's image order.
"""

from __future__ import annotations

from typing import Any

import torch

# keys of a packed batch that the padded layout does not have
PACKED_KEYS = ("seq_lengths", "packed_index")


# a batch's video inputs, passed through packing unchanged like its images
VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


def is_packed(batch: dict[str, torch.Tensor]) -> bool:
    return "seq_lengths" in batch


def pack_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The collator's right-padded batch as one packed row.

    Row tensors become [1, T] (`input_ids`, `mm_token_type_ids`) or [3, 1, T] (`position_ids`), T the
    number of real tokens; images pass unchanged. `attention_mask` and `pool_mask` keep their padded
    [B, L] layout (pooling reads them), `seq_lengths` [B] holds each sequence's length and
    `packed_index` [T] where each packed token sits in the flattened [B * L] padded layout.
    """
    mask = batch["attention_mask"].bool()
    packed: dict[str, torch.Tensor] = {
        "input_ids": batch["input_ids"][mask][None],
        "attention_mask": batch["attention_mask"],
        "pool_mask": batch["pool_mask"],
        "seq_lengths": mask.sum(1),
        "packed_index": mask.flatten().nonzero().squeeze(1),
    }
    if "mm_token_type_ids" in batch:
        packed["mm_token_type_ids"] = batch["mm_token_type_ids"][mask][None]
    if "position_ids" in batch:
        packed["position_ids"] = batch["position_ids"][:, mask][:, None]
    for key in ("pixel_values", "image_grid_thw", *VIDEO_KEYS):
        if key in batch:
            packed[key] = batch[key]
    return packed


def sequence_positions(seq_lengths: torch.Tensor) -> torch.Tensor:
    """[T] positions 0.. restarting at each sequence (the packed row's 1-D positions)."""
    starts = torch.cumsum(seq_lengths, 0) - seq_lengths
    total = int(seq_lengths.sum())
    return torch.arange(total) - torch.repeat_interleave(starts, seq_lengths)


def block_diagonal_mask(seq_lengths: torch.Tensor, causal: bool) -> torch.Tensor:
    """[1, 1, T, T] boolean: True where a query may attend a key (same sequence; earlier if causal)."""
    seq = torch.repeat_interleave(torch.arange(len(seq_lengths)), seq_lengths)
    allowed = seq[:, None] == seq[None, :]
    if causal:
        allowed = allowed.tril()
    return allowed[None, None]


def packed_model_inputs(
    batch: dict[str, torch.Tensor],
    device: torch.device,
    attn_implementation: str,
    causal: bool,
    sequential_positions: bool,
    to_device: Any,
) -> dict[str, Any]:
    """Backbone keyword arguments for a packed batch (see the module docstring).

    Sequential positions are 0.. per sequence on all three M-RoPE axes; flash-attention gets the
    text positions ahead of them instead of a mask (the attention modules' own `is_causal`, set by
    `models/attention.py`, decides causality there).
    """
    inputs: dict[str, Any] = {
        k: to_device(batch[k], device)
        for k in ("input_ids", "mm_token_type_ids", "pixel_values", "image_grid_thw", *VIDEO_KEYS)
        if k in batch
    }
    lengths = batch["seq_lengths"]
    text = sequence_positions(lengths)[None]  # [1, T]
    rope = batch.get("position_ids")  # the collator's M-RoPE positions, per sequence
    if sequential_positions or rope is None:
        rope = text[None].expand(3, 1, -1)
    if attn_implementation.startswith("flash_attention"):
        inputs["position_ids"] = to_device(torch.cat([text[None], rope]), device)
        inputs["attention_mask"] = None
    else:
        inputs["position_ids"] = to_device(rope.contiguous(), device)
        inputs["attention_mask"] = to_device(block_diagonal_mask(lengths, causal), device)
    inputs["use_cache"] = False
    return inputs


def unpack_hidden(hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[1, T, H] packed hidden states → [B, L, H] in the padded layout (zeros at padding)."""
    b, length = batch["attention_mask"].shape
    index = batch["packed_index"].to(hidden.device)
    out = hidden.new_zeros(b * length, hidden.shape[-1])
    out = out.index_copy(0, index, hidden[0])
    return out.view(b, length, -1)
