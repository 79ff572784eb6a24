"""Gradient caching (GradCache, Gao et al. 2021): the large-batch contrastive loss at small-batch memory.

1. embed every chunk without autograd, remembering each chunk's RNG state;
2. compute the loss on the cached embeddings (leaf tensors) and backpropagate into them only;
3. re-embed chunk by chunk with autograd, replaying the RNG state (same dropout masks), and push the
   cached embedding gradients through the encoder.
The parameter gradients equal those of one big forward/backward; peak activation memory is one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


class RngReplay:
    """Captures the CPU (and CUDA) RNG state at creation and replays it inside `with`."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def __enter__(self) -> RngReplay:
        self._fork = torch.random.fork_rng(devices=range(torch.cuda.device_count()))
        self._fork.__enter__()
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        return self

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)


def split_chunks(items: Sequence[Any], chunk_size: int) -> list[Sequence[Any]]:
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    return [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]


def cached_backward(
    encode: Callable[[Any], torch.Tensor],
    sides: Sequence[Sequence[Any]],
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
    scale: float = 1.0,
) -> torch.Tensor:
    """Backpropagate `scale * loss_fn([cat(encode(chunk) for chunk in side) for side in sides])`.

    `sides[s]` is side s (queries, positives, ...) already cut into chunks of model inputs, so
    inputs are prepared once and reused by both passes; `encode` maps one chunk to embeddings
    [n, d]. A side without chunks gives an empty [0, d] tensor. Returns the detached, unscaled loss.
    """
    cached: list[torch.Tensor | None] = []
    states: list[list[RngReplay]] = []
    for chunks in sides:
        parts, side_states = [], []
        for chunk in chunks:
            side_states.append(RngReplay())
            with torch.no_grad():
                parts.append(encode(chunk))
        states.append(side_states)
        cached.append(torch.cat(parts) if parts else None)
    template = next(c for c in cached if c is not None)
    leaves = [
        (c if c is not None else template.new_zeros((0, template.shape[1]))).detach().requires_grad_(True)
        for c in cached
    ]
    loss = loss_fn(leaves)
    (loss * scale).backward()
    for chunks, leaf, side_states in zip(sides, leaves, states, strict=True):
        if leaf.grad is None:
            continue
        start = 0
        for chunk, rng in zip(chunks, side_states, strict=True):
            with rng:
                emb = encode(chunk)
            grad = leaf.grad[start : start + emb.shape[0]]
            start += emb.shape[0]
            emb.backward(gradient=grad.to(emb.dtype))
    return loss.detach()
