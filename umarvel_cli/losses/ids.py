"""Stable int64 content ids for the losses' false-negative exclusion (cand_ids / query_pos_ids).

An id is the first 8 bytes of blake2b(text) with the sign bit cleared, so it is the same in every
process and on every rank (unlike `hash()`), never negative (-1 stays free as padding), and two
different strings collide with probability ~2^-63 per pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import torch

PAD_ID = -1


def content_id(text: str) -> int:
    """Non-negative int64 id of a string (e.g. a candidate's did)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def content_ids(texts: Iterable[str], device: torch.device | str | None = None) -> torch.Tensor:
    """int64 [N] ids, one per string (the `cand_ids` argument)."""
    return torch.tensor([content_id(t) for t in texts], dtype=torch.int64, device=device)


def positive_id_matrix(
    positives: Sequence[Sequence[str]], width: int | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """int64 [B, P] ids of each query's positives, padded with -1 (the `query_pos_ids` argument).

    P is `width` or the longest list (at least 1); a list longer than `width` raises ValueError.
    """
    longest = max((len(p) for p in positives), default=0)
    p = max(1, longest) if width is None else width
    if longest > p:
        raise ValueError(f"a query has {longest} positives but width is {p}")
    rows = [[content_id(t) for t in pos] + [PAD_ID] * (p - len(pos)) for pos in positives]
    return torch.tensor(rows, dtype=torch.int64, device=device).reshape(len(positives), p)
