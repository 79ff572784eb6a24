"""What the reranker trains on: per query, one positive ("Yes") and one mined negative ("No").

As released (spec 6.1): the positive is drawn from the query's positives, the negative uniformly
from its mined list (the retriever's local top-100) minus the positives. Draws are a pure function
of (seed, epoch, qid), so a resumed run draws the same pairs. A query without a positive or without
a negative left is skipped and counted.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

YES, NO = "Yes", "No"


@dataclass(frozen=True)
class TrainPair:
    qid: str
    did: str
    answer: str  # "Yes" or "No"


def draw_pairs(
    qids: Sequence[str],
    positives: Mapping[str, Sequence[str]],
    mined: Mapping[str, Sequence[str]],
    seed: int = 42,
    epoch: int = 0,
) -> tuple[list[TrainPair], dict[str, int]]:
    """[positive pair, negative pair] per query, in query order; and how many queries lacked either."""
    pairs: list[TrainPair] = []
    skipped = {"no_positive": 0, "no_negative": 0}
    for q in qids:
        pos = list(dict.fromkeys(positives.get(q, ())))
        if not pos:
            skipped["no_positive"] += 1
            continue
        taken = set(pos)
        negs = [d for d in dict.fromkeys(mined.get(q, ())) if d not in taken]
        if not negs:
            skipped["no_negative"] += 1
            continue
        rng = np.random.default_rng([seed, epoch, zlib.crc32(q.encode())])
        pairs.append(TrainPair(q, pos[int(rng.integers(len(pos)))], YES))
        pairs.append(TrainPair(q, negs[int(rng.integers(len(negs)))], NO))
    return pairs, skipped
