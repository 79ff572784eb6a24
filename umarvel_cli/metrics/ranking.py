"""Per-query ranking metrics: pure functions of one ranking and one query's relevance judgements.

Conventions (the same for every function, so numbers stay comparable):
- `ranking` is a sequence of candidate ids, best first. A repeated id counts once: its later
  occurrences are dropped before cutting at k, so every slot holds a distinct candidate.
- `relevant` maps a candidate id to its relevance; ids with relevance <= 0 are not relevant.
  Positives that are missing from the pool (never retrieved) still count in the denominators of
  recall, NDCG and AP, so a query whose positives are unreachable cannot score full marks.
- A query without any positive scores 0 everywhere (UniIR's `compute_recall_at_k` does the same);
  callers report how many such queries there were instead of dropping them.
- Fewer than k candidates: the ranking is simply shorter; nothing is padded.
- Ties in score are resolved before these functions see a ranking, by `order_by_score`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

Id = TypeVar("Id", bound=Hashable)


def order_by_score(
    ids: Sequence[Id], scores: Sequence[float], ranks: Sequence[int] | None = None
) -> list[Id]:
    """Order a query's retrieved ids: score descending; ties by the given rank, then by id.

    This is the tie rule for every run umarvel evaluates. A run written by `umarvel search` already
    ranks equal scores by candidate position in the pool, which its `rank` column carries.
    """
    if len(ids) != len(scores) or (ranks is not None and len(ranks) != len(ids)):
        raise ValueError("ids, scores and ranks must have the same length")
    keyed = [
        (-float(scores[i]), ranks[i] if ranks is not None else 0, str(ids[i]), i) for i in range(len(ids))
    ]
    keyed.sort()
    return [ids[t[3]] for t in keyed]


def top_distinct(ranking: Sequence[Id], k: int) -> list[Id]:
    """The first k distinct ids of a ranking (later duplicates dropped)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    seen: set[Id] = set()
    out: list[Id] = []
    for did in ranking:
        if did not in seen:
            seen.add(did)
            out.append(did)
            if len(out) == k:
                break
    return out


def _positives(relevant: Mapping[Id, int]) -> set[Id]:
    return {d for d, r in relevant.items() if r > 0}


def hit_at_k(ranking: Sequence[Id], relevant: Mapping[Id, int], k: int) -> float:
    """UniIR "Recall@k": 1 if any positive is in the top k, else 0 (a hit rate / success@k)."""
    pos = _positives(relevant)
    return 1.0 if pos and any(d in pos for d in top_distinct(ranking, k)) else 0.0


def recall_at_k(ranking: Sequence[Id], relevant: Mapping[Id, int], k: int) -> float:
    """True recall: share of the query's positives found in the top k (trec_eval `recall.k`)."""
    pos = _positives(relevant)
    if not pos:
        return 0.0
    return sum(1 for d in top_distinct(ranking, k) if d in pos) / len(pos)


def reciprocal_rank_at_k(ranking: Sequence[Id], relevant: Mapping[Id, int], k: int = 10) -> float:
    """1 / rank of the first positive within the top k, else 0 (MRR@k once averaged)."""
    pos = _positives(relevant)
    for rank, d in enumerate(top_distinct(ranking, k), start=1):
        if d in pos:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranking: Sequence[Id], relevant: Mapping[Id, int], k: int = 10) -> float:
    """NDCG@k with linear gains (gain = relevance, discount 1/log2(rank+1)).

    The ideal ranking is built from all judged positives, including those absent from the pool.
    """
    gains = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
    if not gains:
        return 0.0
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    dcg = sum(max(relevant.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(top_distinct(ranking, k)))
    return dcg / ideal


def average_precision_at_k(ranking: Sequence[Id], relevant: Mapping[Id, int], k: int) -> float:
    """CIRCO-style AP@k: sum over hit ranks i <= k of precision@i, divided by min(k, #positives)."""
    pos = _positives(relevant)
    if not pos:
        return 0.0
    hits = 0
    total = 0.0
    for rank, d in enumerate(top_distinct(ranking, k), start=1):
        if d in pos:
            hits += 1
            total += hits / rank
    return total / min(k, len(pos))


DEFAULT_CUTOFFS = (1, 5, 10, 50, 100)


def query_metrics(
    ranking: Sequence[Id],
    relevant: Mapping[Id, int],
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    map_cutoffs: Sequence[int] = (),
) -> dict[str, float]:
    """Every metric of one query under fixed names: hit@k, recall@k, mrr@10, ndcg@10, map@k.

    One pass over the ranking finds the ranks of the positives; each metric then follows from them
    (the same values as the single-metric functions above, which the tests check).
    """
    pos = {d: r for d, r in relevant.items() if r > 0}
    depth = max((*cutoffs, *map_cutoffs, 10))
    hits: list[tuple[int, int]] = []  # (distinct rank, relevance) of each retrieved positive
    seen: set[Id] = set()
    rank = 0
    for did in ranking:
        if did in seen:
            continue
        seen.add(did)
        rank += 1
        if rank > depth:
            break
        if did in pos:
            hits.append((rank, pos[did]))
    n_pos = len(pos)
    out: dict[str, float] = {}
    for k in cutoffs:
        found = sum(1 for r, _ in hits if r <= k)
        out[f"hit@{k}"] = 1.0 if found else 0.0
        out[f"recall@{k}"] = found / n_pos if n_pos else 0.0
    out["mrr@10"] = 1.0 / hits[0][0] if hits and hits[0][0] <= 10 else 0.0
    ideal_gains = sorted(pos.values(), reverse=True)[:10]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
    dcg = sum(g / math.log2(r + 1) for r, g in hits if r <= 10)
    out["ndcg@10"] = dcg / ideal if ideal else 0.0
    for k in map_cutoffs:
        total = sum((n + 1) / r for n, (r, _) in enumerate(h for h in hits if h[0] <= k))
        out[f"map@{k}"] = total / min(k, n_pos) if n_pos else 0.0
    return out


METRIC_DEFINITIONS: dict[str, str] = {
    "hit@k": "UniIR 'Recall@k': share of queries with at least one positive in the top k (success@k)",
    "recall@k": "true recall: mean over queries of |positives in top k| / |positives| (trec_eval recall.k)",
    "mrr@10": "mean reciprocal rank of the first positive within the top 10 (0 if none)",
    "ndcg@10": "NDCG@10, linear gains, ideal ranking from all judged positives (even those not in the pool)",
    "map@k": "CIRCO-style mAP@k: sum of precision@i at hit ranks i<=k, divided by min(k, #positives)",
    "ties": "equal scores are ordered by the run's rank, then by candidate id (ascending)",
    "duplicates": "a candidate id repeated in a ranking counts once; later copies are dropped before the cut",
    "no_positives": "a query without positives scores 0 and is counted in n_without_qrels",
    "no_results": "a query of the split absent from the run scores 0 and is counted in n_without_results",
}
