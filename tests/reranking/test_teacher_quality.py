"""The teacher check before distillation: per-list AUC of P(Yes), the cosine and the fused score."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from umarvel_cli.reranking.teacher_quality import auc, teacher_quality


def test_auc_counts_positive_above_non_positive_pairs_and_ties_half():
    positive = np.array([True, False, False, True])
    assert auc(np.array([3.0, 1.0, 2.0, 4.0]), positive) == 1.0
    assert auc(np.array([0.0, 1.0, 2.0, 4.0]), positive) == 0.5  # 0 beats none, 4 beats both
    assert auc(np.array([1.0, 1.0, 1.0, 1.0]), positive) == 0.5
    assert math.isnan(auc(np.array([1.0, 2.0]), np.array([True, True])))


def _table(rows):
    return pa.Table.from_pylist(
        [dict(zip(("qid", "did", "rank", "retrieval_score", "rerank_score"), r, strict=True)) for r in rows]
    )


ROWS = [  # q1: cosine right, P(Yes) backwards; q2: only positives (says nothing); q3: both right
    ("q1", "p1", 1, 0.9, 0.1), ("q1", "n1", 2, 0.5, 0.9), ("q1", "n2", 3, 0.4, 0.8),
    ("q2", "p2", 1, 0.9, 0.9),
    ("q3", "p3", 1, 0.8, 0.9), ("q3", "n3", 2, 0.7, 0.2),
]  # fmt: skip
POSITIVES = {"q1": {"p1"}, "q2": {"p2"}, "q3": {"p3"}}
TASKS = {"q1": "a", "q2": "a", "q3": "b"}


def test_quality_is_the_mean_over_lists_with_both_kinds_and_flags_a_teacher_worse_than_the_cosine():
    q = teacher_quality(_table(ROWS), POSITIVES, TASKS, {"default": 1.0})
    assert q.lists == 2
    assert q.retrieval_auc == 1.0 and q.rerank_auc == pytest.approx((0.0 + 1.0) / 2)
    # q1 fused: p1 1.0 vs n1 1.4, n2 1.2 -> 0; q3: 1.7 vs 0.9 -> 1
    assert q.fused_auc == pytest.approx(0.5) and q.worse_than_retrieval
    assert "2 teacher lists" in q.describe() and "50.0% of the time by the fused score" in q.describe()
    # weight 0 on task a: F is the cosine there, so the teacher teaches the retriever's own order
    q0 = teacher_quality(_table(ROWS), POSITIVES, TASKS, {"default": 1.0, "a": 0.0})
    assert q0.fused_auc == 1.0 and not q0.worse_than_retrieval
    assert q0.as_dict() == {"lists": 2, "rerank_auc": 0.5, "retrieval_auc": 1.0, "fused_auc": 1.0}
