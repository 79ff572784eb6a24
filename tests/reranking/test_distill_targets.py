"""Distillation targets: F = cosine + w(task) * P(Yes) per candidate, sorted, teacher scores F / 2."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from umarvel_cli.artifacts import TABLES
from umarvel_cli.errors import UmarvelError
from umarvel_cli.reranking.distill_targets import distill_lists, fusion_weights


def test_shipped_weights_are_the_released_ones():
    assert fusion_weights() == {"default": 1.0, "mscoco_task0": 0.5, "mscoco_task3": 0.1}


def test_lists_fuse_each_candidate_with_its_own_cosine_per_task(tmp_path):
    rows = [  # (qid, did, rank, cosine, P(Yes))
        ("a", "x", 1, 0.9, 0.0),
        ("a", "y", 2, 0.8, 0.5),
        ("a", "z", 3, 0.7, 0.5),
        ("b", "x", 1, 0.9, 0.0),
        ("b", "y", 2, 0.8, 1.0),
    ]
    teacher = pa.Table.from_pylist(
        [dict(zip(("qid", "did", "rank", "retrieval_score", "rerank_score"), r, strict=True)) for r in rows],
        schema=TABLES["teacher"],
    )
    lists = distill_lists(teacher, {"a": "mscoco_task3", "b": "webqa_task1"}, fusion_weights())
    assert lists["a"].dids == ["x", "y", "z"]  # w = 0.1: 0.9, 0.85, 0.75
    np.testing.assert_allclose(lists["a"].fused, [0.9, 0.85, 0.75], rtol=1e-6)
    assert lists["b"].dids == ["y", "x"]  # w = 1: 1.8 beats 0.9
    np.testing.assert_allclose(lists["b"].teacher_scores, [0.9, 0.45], rtol=1e-6)
    assert distill_lists(teacher, {"a": "t", "b": "t"}, {"default": 1.0}, topk=1)["a"].dids == [
        "y"
    ]  # w = 1: 1.3
    with pytest.raises(UmarvelError, match="teacher query 'b' is not in the tables"):
        distill_lists(teacher, {"a": "t"}, {"default": 1.0})
    bad = tmp_path / "w.yaml"
    bad.write_text("fusion_weights:\n  default: -1\n")
    with pytest.raises(UmarvelError, match="fusion weight -1.0 is not a finite number >= 0"):
        fusion_weights(bad)
