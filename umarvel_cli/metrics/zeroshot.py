"""Zero-shot benchmark metrics: pure functions of one query's ranking (or scores) and judgements.

Same conventions as `metrics.ranking` (a repeated id counts once, missing positives still count):
- r@k: 1 if a positive with relevance >= `min_relevance` is in the top k (CLIP-style recall; CIRCO's
  recall@k counts only the annotated target, which its tables mark with relevance 2);
- map@k: CIRCO's AP@k, the sum of precision@i at hit ranks i <= k divided by min(k, #ground truths)
  (miccunifi/CIRCO src/evaluation.py);
- first positive rank (1-based) for median/mean rank; a positive the run never retrieved takes
  `missing_rank` (the gallery size, the worst rank), so a short run cannot look better;
- gallery protocols (GeneCIS) rank only the query's own gallery, in the run's order;
- choice accuracy (SugarCrepe, CC-Neg): correct iff the positive scores strictly above every other
  option; an option absent from the run never wins, and a positive absent from it is wrong.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from umarvel_cli.metrics.ranking import average_precision_at_k, top_distinct

Id = TypeVar("Id", bound=Hashable)


def _positives(relevant: Mapping[Id, int], min_relevance: int) -> set[Id]:
    return {d for d, r in relevant.items() if r >= min_relevance and r > 0}


def recall_hit_at_k(
    ranking: Sequence[Id], relevant: Mapping[Id, int], k: int, min_relevance: int = 1
) -> float:
    pos = _positives(relevant, min_relevance)
    return 1.0 if pos and any(d in pos for d in top_distinct(ranking, k)) else 0.0


def map_at_k(ranking: Sequence[Id], relevant: Mapping[Id, int], k: int) -> float:
    return average_precision_at_k(ranking, relevant, k)


def first_positive_rank(
    ranking: Sequence[Id], relevant: Mapping[Id, int], min_relevance: int = 1
) -> int | None:
    pos = _positives(relevant, min_relevance)
    seen: set[Id] = set()
    for did in ranking:
        if did in seen:
            continue
        seen.add(did)
        if did in pos:
            return len(seen)
    return None


def within_gallery(ranking: Sequence[Id], gallery: Iterable[Id]) -> list[Id]:
    """The run's ranking restricted to a query's own gallery (GeneCIS protocol)."""
    members = set(gallery)
    return [d for d in ranking if d in members]


def choice_correct(scores: Mapping[Id, float], positive: Id, options: Sequence[Id]) -> float:
    if positive not in scores:
        return 0.0
    best_other = max((scores[o] for o in options if o != positive and o in scores), default=-math.inf)
    return 1.0 if scores[positive] > best_other else 0.0


def median_rank(ranks: Sequence[int]) -> float:
    return float(statistics.median(ranks)) if ranks else math.nan


def mean_rank(ranks: Sequence[int]) -> float:
    return float(statistics.fmean(ranks)) if ranks else math.nan


def query_metrics(
    ranking: Sequence[Id],
    relevant: Mapping[Id, int],
    names: Sequence[str],
    min_relevance: int = 1,
    missing_rank: int | None = None,
) -> dict[str, float]:
    """Per-query values of r@k, map@k and `rank` (first positive, for median/mean rank)."""
    out: dict[str, float] = {}
    for name in names:
        if name.startswith("r@"):
            out[name] = recall_hit_at_k(ranking, relevant, int(name[2:]), min_relevance)
        elif name.startswith("map@"):
            out[name] = map_at_k(ranking, relevant, int(name[4:]))
        elif name in ("median_rank", "mean_rank") and "rank" not in out:
            rank = first_positive_rank(ranking, relevant, min_relevance)
            out["rank"] = float(rank if rank is not None else (missing_rank or len(ranking) + 1))
    return out


def aggregate(per_query: Sequence[Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """Mean of each per-query metric; median and mean of the first-positive ranks."""
    out: dict[str, float] = {}
    ranks = [int(q["rank"]) for q in per_query if "rank" in q]
    for name in names:
        if name == "median_rank":
            out[name] = median_rank(ranks)
        elif name == "mean_rank":
            out[name] = mean_rank(ranks)
        else:
            values = [q[name] for q in per_query if name in q]
            out[name] = float(statistics.fmean(values)) if values else math.nan
    return out


DEFINITIONS: dict[str, str] = {
    "r@k": "share of queries with a positive in the top k (CIRCO: the annotated target only)",
    "map@k": "CIRCO mAP@k: sum of precision@i at hit ranks i<=k over min(k, #ground truths), averaged",
    "median_rank": "median over queries of the rank of the first positive (absent from the run: the gallery size)",
    "mean_rank": "mean over queries of the rank of the first positive (absent from the run: the gallery size)",
    "accuracy": "choice accuracy: the true caption scores strictly above every other option of its query",
    "gallery": "GeneCIS: the run's ranking restricted to the query's own gallery ([target] + gallery)",
    "ties": "equal scores are ordered by the run's rank, then by candidate id (ascending)",
}
