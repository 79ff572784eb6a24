"""Exact top-k with one deterministic tie rule, over a score tile and across tiles.

The rule: higher score first; equal scores by lower candidate position (the order candidates are
streamed in). It makes streaming search, faiss search and a full-matrix brute force return the same
ids in the same order whenever they compute the same scores.
"""

from __future__ import annotations

import torch


def order_rows(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (value descending, index ascending)."""
    idx_sorted, perm = indices.sort(dim=1)
    vals = values.gather(1, perm)
    vals, perm = vals.sort(dim=1, descending=True, stable=True)
    return vals, idx_sorted.gather(1, perm)


def tile_topk(scores: torch.Tensor, k: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of a (queries, candidates) tile under the tie rule; indices get `offset` added.

    `torch.topk` picks arbitrarily among equal values, so it asks for k+1: a row whose k-th and
    (k+1)-th values differ has a unique top-k set; the rare rows with a tie at the cut are redone
    with a full stable sort.
    """
    n = scores.shape[1]
    if n <= k + 1:
        vals, idx = scores.sort(dim=1, descending=True, stable=True)
        return vals[:, :k], idx[:, :k] + offset
    vals, idx = scores.topk(k + 1, dim=1, sorted=True)
    tied = (vals[:, k - 1] == vals[:, k]).nonzero().flatten()
    vals, idx = order_rows(vals[:, :k], idx[:, :k])
    if tied.numel():
        full_vals, full_idx = scores[tied].sort(dim=1, descending=True, stable=True)
        vals[tied] = full_vals[:, :k]
        idx[tied] = full_idx[:, :k]
    return vals, idx + offset


def merge_topk(
    run_vals: torch.Tensor, run_idx: torch.Tensor, new_vals: torch.Tensor, new_idx: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge a running top-k with a later tile's top-k (both ordered by the rule).

    Every running index is below every new one, so a stable sort of [running, new] keeps the rule.
    """
    vals = torch.cat([run_vals, new_vals], dim=1)
    idx = torch.cat([run_idx, new_idx], dim=1)
    vals, perm = vals.sort(dim=1, descending=True, stable=True)
    return vals[:, :k], idx.gather(1, perm[:, :k])
