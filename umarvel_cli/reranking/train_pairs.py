"""What the reranker trains on: per query, one positive ("Yes") and one mined negative ("No").

As released (spec 6.1): the positive is drawn from the query's positives, the negative uniformly
from its mined list (the retriever's local top-100) minus the positives. Draws are a pure function
of (seed, epoch, qid), so a resumed run draws the same pairs. A query without a positive or without
a negative left is skipped and counted.

`random_share` (0 as released) draws that share of the "No" candidates instead from `random_pool`
(per query: its task's other training positives): easy negatives a small reranker learns to compare
on before the mined ones, which alone leave it at chance for thousands of steps (docs/benchmarks.md).
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
    random_share: float = 0.0,
    random_pool: Mapping[str, Sequence[str]] | None = None,
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
        if random_share > 0 and random_pool is not None and rng.random() < random_share:
            easy = [d for d in random_pool.get(q, ()) if d not in taken]
            negs = easy or negs  # a task whose positives are all this query's: the mined list
        pairs.append(TrainPair(q, negs[int(rng.integers(len(negs)))], NO))
    return pairs, skipped
