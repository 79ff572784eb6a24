"""How well a teacher table orders its own lists: a check before distilling from it.

The teacher lists keep their positives (as released), so each query's list says how often a score
puts a positive above a non-positive (the per-query AUC, ties counting half). Distillation teaches the
student the fused order F = cosine + w·P(Yes); if F orders the lists worse than the cosine alone,
the student is taught a worse order than it already has (a tiny reranker at chance cost the demo's
student 9 points, docs/benchmarks.md), and the stage says so before it trains.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from umarvel_cli.reranking.fusion import teacher_fused


@dataclass(frozen=True)
class TeacherQuality:
    lists: int  # lists holding both a positive and a non-positive (the others say nothing)
    rerank_auc: float  # P(Yes) alone
    retrieval_auc: float  # the retriever's cosine alone
    fused_auc: float  # F = cosine + w·P(Yes): what the student is taught

    @property
    def worse_than_retrieval(self) -> bool:
        return self.lists > 0 and self.fused_auc < self.retrieval_auc

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"over {self.lists} teacher lists, a positive is above a non-positive "
            f"{self.fused_auc:.1%} of the time by the fused score, {self.retrieval_auc:.1%} by the "
            f"retriever's cosine, {self.rerank_auc:.1%} by P(Yes)"
        )


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a non-positive), ties half; NaN without both."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def teacher_quality(
    teacher: pa.Table,
    positives: Mapping[str, Collection[str]],
    task_of: Mapping[str, str],
    weights: Mapping[str, float],
) -> TeacherQuality:
    """Mean per-list AUC of P(Yes), the cosine and F, over the lists with both kinds of candidate."""
    scores = {
        "rerank": teacher.column("rerank_score").to_numpy().astype(np.float64),
        "retrieval": teacher.column("retrieval_score").to_numpy().astype(np.float64),
        "fused": teacher_fused(teacher, weights, task_of),
    }
    qid_col = teacher.column("qid").to_numpy(zero_copy_only=False)
    dids = teacher.column("did").to_numpy(zero_copy_only=False)
    order = np.argsort(qid_col, kind="stable")
    qids = qid_col[order]
    starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
    per: dict[str, list[float]] = {name: [] for name in scores}
    for lo, hi in zip(starts, np.r_[starts[1:], len(qids)], strict=True):
        rows = order[lo:hi]
        mine = positives.get(str(qids[lo]), ())
        mask = np.array([d in mine for d in dids[rows]], dtype=bool)
        if mask.all() or not mask.any():
            continue
        for name, s in scores.items():
            per[name].append(auc(s[rows], mask))
    n = len(per["fused"])
    mean = {k: float(np.mean(v)) if v else float("nan") for k, v in per.items()}
    return TeacherQuality(n, mean["rerank"], mean["retrieval"], mean["fused"])
