"""False-negative filters and negative selection, as pure functions on (queries x ranked candidates) arrays.

Mining is where unlabelled positives hurt most (the paper: unfiltered top-k cost 3 points), so every
rule is a plain mask here and is counted. The rules run in a fixed order and each one counts only
what it removed from the candidates the rules before it kept, so the drop counts of a query add up
to the candidates it lost:

  positive      a labelled positive (always);
  same_content  the same content as a positive (same `src_content`, or same text and image) (always);
  range         rank outside `--range a-b` (FlagEmbedding's range_for_sampling, ST's range_min/max);
  modality      not the task's candidate modality (`--same-modality`);
  max_score     cosine above `--max-score` (the paper's 0.7);
  margin        score above pos_score - `--margin` (ST's absolute_margin);
  ratio         score above `--max-score-ratio` x pos_score (NV-Retriever's TopK-PercPos, 0.95).

pos_score is the best labelled positive's score for the query; where it is unknown (NaN) the two
positive-aware rules keep everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILTERS = ("positive", "same_content", "range", "modality", "max_score", "margin", "ratio")
SAMPLES = ("top", "random")


@dataclass(frozen=True)
class FilterSettings:
    """What survives and how many are kept. The defaults drop anything scoring above 95% of the
    positive (NV-Retriever's TopK-PercPos) and, where the positive scores below 0, above the positive
    (margin 0): on the demo this removes 84% of the planted near-duplicates while 98.5% of queries
    keep k; with a ratio of 1.0 it was 74% (docs/benchmarks.md, "mine")."""

    num_negatives: int = 5
    rank_range: tuple[int, int] = (1, 100)
    margin: float | None = 0.0
    max_score_ratio: float | None = 0.95
    max_score: float | None = 1.0
    same_modality: bool = False
    sample: str = "top"


@dataclass
class Filtered:
    """`keep[i, j]`: candidate j of query i survived; `drops[name][i]`: how many rule `name` removed."""

    keep: np.ndarray
    drops: dict[str, np.ndarray]


def same_content(cand_keys: np.ndarray, pos_keys: np.ndarray) -> np.ndarray:
    """(n, K) mask: candidate key equals one of the query's positive keys.

    Keys are integer codes; a candidate without content has a code < 0 and never matches, and
    positive rows are padded with -2 (which no candidate code equals).
    """
    if pos_keys.shape[1] == 0:
        return np.zeros(cand_keys.shape, dtype=bool)
    hit = (cand_keys[:, :, None] == pos_keys[:, None, :]).any(axis=2)
    return hit & (cand_keys >= 0)


def filter_candidates(
    scores: np.ndarray,
    valid: np.ndarray,
    is_positive: np.ndarray,
    same: np.ndarray,
    modality_ok: np.ndarray,
    pos_score: np.ndarray,
    settings: FilterSettings,
    ranks: np.ndarray | None = None,
) -> Filtered:
    """Apply the rules in order (module docstring). All masks are (n, K); `pos_score` is (n,).

    `ranks` (1-based, (n, K)) defaults to the column position + 1.
    """
    n, k = scores.shape
    if ranks is None:
        ranks = np.broadcast_to(np.arange(1, k + 1, dtype=np.int64), (n, k))
    lo, hi = settings.rank_range
    ps = pos_score.astype(np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        rules = {
            "positive": is_positive,
            "same_content": same,
            "range": (ranks < lo) | (ranks > hi),
            "modality": ~modality_ok if settings.same_modality else None,
            "max_score": scores > settings.max_score if settings.max_score is not None else None,
            "margin": scores > ps - settings.margin if settings.margin is not None else None,
            "ratio": scores > settings.max_score_ratio * ps if settings.max_score_ratio is not None else None,
        }
    alive = valid.copy()
    drops: dict[str, np.ndarray] = {}
    for name in FILTERS:
        rule = rules[name]
        if rule is None:
            drops[name] = np.zeros(n, dtype=np.int32)
            continue
        hit = alive & rule
        drops[name] = hit.sum(axis=1).astype(np.int32)
        alive &= ~hit
    return Filtered(keep=alive, drops=drops)


def select_negatives(
    keep: np.ndarray, k: int, sample: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(n, k) column positions of the chosen negatives in rank order, -1 where a query is short.

    `top`: the first k survivors; `random`: k survivors drawn uniformly (then put back in rank order).
    """
    if sample not in SAMPLES:
        raise ValueError(f"sample must be one of {SAMPLES}, not {sample!r}")
    n, width = keep.shape
    if sample == "top":
        key = np.broadcast_to(np.arange(width, dtype=np.float64), (n, width)).copy()
    else:
        if rng is None:
            raise ValueError("random sampling needs a generator")
        key = rng.random((n, width))
    key[~keep] = np.inf
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(keep, order, axis=1)
    order = np.where(chosen, order, width)  # short rows: sort the holes last
    order.sort(axis=1)
    out = np.full((n, k), -1, dtype=np.int64)
    out[:, : order.shape[1]] = np.where(order < width, order, -1)
    return out


def first_true(mask: np.ndarray) -> np.ndarray:
    """1-based column of the first True per row, 0 where there is none."""
    any_ = mask.any(axis=1)
    return np.where(any_, mask.argmax(axis=1) + 1, 0)
