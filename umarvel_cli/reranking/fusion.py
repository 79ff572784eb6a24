"""U-MARVEL+ fusion: fused = cosine + W * P(Yes) over each query's reranked top-k, re-sorted.

Each candidate is fused with ITS OWN retrieval score, joined on (qid, did), on the local and the
global pool alike (the released global fusion paired candidates with the scores of other ranks:
B7). W is given, per task or for all, or chosen on the validation split only by `tune_weight` (the
released weights were searched on the test set: B8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import TABLES
from umarvel_cli.errors import UmarvelError
from umarvel_cli.reranking.teacher import check_known

# The grid `--tune-weight-on val` searches (the released commented grid was range(0, 21) / 10).
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(21))

Weight = float | Mapping[str, float]


def row_weights(qids: Sequence[str], weight: Weight, task_of: Mapping[str, str] | None) -> np.ndarray:
    """W of each row's query: one number, or per task ("default" for the tasks not named)."""
    if not isinstance(weight, Mapping):
        return np.full(len(qids), float(weight))
    if task_of is None:
        raise ValueError("per-task weights need task_of")
    default = float(weight.get("default", 1.0))
    return np.array([float(weight.get(task_of[q], default)) for q in qids])


def teacher_fused(teacher: pa.Table, weight: Weight, task_of: Mapping[str, str] | None = None) -> np.ndarray:
    """F = retrieval score + W * P(Yes) of every teacher row (float64), each with its own cosine."""
    cosine = teacher.column("retrieval_score").to_numpy().astype(np.float64)
    p_yes = teacher.column("rerank_score").to_numpy().astype(np.float64)
    return cosine + row_weights(teacher.column("qid").to_pylist(), weight, task_of) * p_yes


def check_weight(weight: Weight) -> None:
    values = list(weight.values()) if isinstance(weight, Mapping) else [weight]
    for w in values:
        if not np.isfinite(w) or w < 0:
            raise UmarvelError(f"fusion weight {w} is not a finite number >= 0", field="--rerank-weight")


def fuse_run(
    run: pa.Table,
    teacher: pa.Table,
    weight: Weight,
    task_of: Mapping[str, str] | None = None,
    source: str | Path = "teacher scores",
) -> pa.Table:
    """The run with each reranked candidate's score = its own score + W * P(Yes), re-ranked.

    Per query, the reranked candidates come first (by fused score), then the others in their run
    order, their scores capped at the lowest fused one so the order holds whatever W is.
    Teacher rows whose (qid, did) the run does not hold are refused.
    """
    check_weight(weight)
    check_known(teacher, pc.unique(run.column("qid")), pc.unique(run.column("did")), source, "the run")
    keyed = teacher.select(["qid", "did", "rerank_score"])
    joined = run.join(keyed, keys=["qid", "did"], join_type="left outer")
    matched = joined.num_rows - joined.column("rerank_score").null_count
    if matched != teacher.num_rows or joined.num_rows != run.num_rows:
        raise UmarvelError(
            f"{teacher.num_rows - matched} teacher row(s) name a (qid, did) pair the run does not hold "
            "or name one twice",
            file=source,
            expected="teacher scores made from this run's candidates",
        )
    qids = joined.column("qid").to_pylist()
    score = joined.column("score").to_numpy().astype(np.float64)
    p_yes = joined.column("rerank_score").to_numpy(zero_copy_only=False)
    reranked = ~np.isnan(p_yes.astype(np.float64))
    fused = np.where(reranked, score + row_weights(qids, weight, task_of) * np.nan_to_num(p_yes), score)
    table = pa.table(
        {
            "qid": joined.column("qid"),
            "did": joined.column("did"),
            "rank": joined.column("rank"),
            "fused": pa.array(fused),
            "reranked": pa.array(reranked),
        }
    ).sort_by(
        [
            ("qid", "ascending"),
            ("reranked", "descending"),
            ("fused", "descending"),
            ("rank", "ascending"),
            ("did", "ascending"),
        ]
    )
    q = table.column("qid").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]]) if len(q) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(q)])
    position = np.arange(len(q)) - np.repeat(starts, sizes)
    fused_sorted = table.column("fused").to_numpy()
    flag = table.column("reranked").to_numpy(zero_copy_only=False)
    # each query's lowest fused score: the candidates that were not reranked never rise above it
    lowest = np.minimum.reduceat(np.where(flag, fused_sorted, np.inf), starts) if len(q) else fused_sorted
    out_score = np.where(flag, fused_sorted, np.minimum(fused_sorted, np.repeat(lowest, sizes)))
    return pa.table(
        {
            "qid": table.column("qid"),
            "did": table.column("did"),
            "rank": pa.array(position + 1, type=pa.int32()),
            "score": pa.array(out_score, type=pa.float32()),
        },
        schema=TABLES["run"],
    )


@dataclass
class Tuning:
    """What `tune_weight` tried and chose (recorded in metrics.json)."""

    grid: list[float]
    val_scores: list[float | None]  # mean headline (Recall@k) per W
    val_mrr10: list[float]  # mean over tasks of MRR@10 per W: breaks ties of the headline
    weight: float
    split: str = "val"

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "grid": self.grid,
            "val_scores": self.val_scores,
            "val_mrr@10": self.val_mrr10,
            "chosen": self.weight,
            "rule": "best mean Recall@k, then best mean MRR@10, then the smallest W",
        }


def tune_weight(
    run: pa.Table,
    teacher: pa.Table,
    qids: Sequence[str],
    task_of: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    metric_k: Mapping[str, int],
    order: Sequence[str],
    grid: Sequence[float] = WEIGHT_GRID,
) -> Tuning:
    """The W of `grid` whose fused run has the best mean headline score on these (validation) queries.

    Reranking only inside the top k cannot change a Recall@k hit when the reranked top-k is no
    longer than k, so ties are broken by mean MRR@10, then by the smallest W (the least change to
    the retriever's order)."""
    from umarvel_cli.evaluation.run_input import to_rankings
    from umarvel_cli.metrics.aggregate import evaluate_queries, summarize_tasks

    scores: list[float | None] = []
    mrr: list[float] = []
    for w in grid:
        rankings = to_rankings(fuse_run(run, teacher, float(w), task_of))
        outcomes = evaluate_queries(list(qids), rankings.by_qid, rankings.relevance(dict(qrels)))
        summary = summarize_tasks(outcomes, dict(task_of), dict(metric_k), list(order))
        scores.append(summary.mean)
        per_task = [t.metrics.get("mrr@10", 0.0) for t in summary.tasks]
        mrr.append(float(np.mean(per_task)) if per_task else 0.0)
    best = max(range(len(grid)), key=lambda i: (scores[i] if scores[i] is not None else -1.0, mrr[i], -i))
    return Tuning([float(w) for w in grid], scores, mrr, float(grid[best]))
