"""Zero-shot metrics against cases computed by hand."""

from __future__ import annotations

import math

import pytest

from umarvel_cli.metrics.zeroshot import (
    aggregate,
    choice_correct,
    first_positive_rank,
    map_at_k,
    mean_rank,
    median_rank,
    query_metrics,
    recall_hit_at_k,
    within_gallery,
)


def test_circo_map_divides_by_min_k_and_ground_truths():
    # 3 ground truths; hits at ranks 1 and 4 -> precisions 1/1 and 2/4.
    ranking = ["g1", "x", "y", "g2", "z", "g3"]
    rel = {"g1": 2, "g2": 1, "g3": 1}
    assert map_at_k(ranking, rel, 5) == pytest.approx((1 + 0.5) / 3)
    # k=2 < #gt: only the hit at 1 counts, divided by min(2, 3) = 2.
    assert map_at_k(ranking, rel, 2) == pytest.approx(1 / 2)
    # k=10: the third hit at rank 6 adds 3/6.
    assert map_at_k(ranking, rel, 10) == pytest.approx((1 + 0.5 + 0.5) / 3)
    # one ground truth found at rank 2: AP@5 = (1/2) / min(5, 1).
    assert map_at_k(["a", "t"], {"t": 2}, 5) == pytest.approx(0.5)


def test_circo_recall_counts_the_target_only():
    ranking = ["g2", "x", "target"]
    rel = {"target": 2, "g2": 1}
    assert recall_hit_at_k(ranking, rel, 1) == 1.0  # any positive
    assert recall_hit_at_k(ranking, rel, 1, min_relevance=2) == 0.0
    assert recall_hit_at_k(ranking, rel, 3, min_relevance=2) == 1.0


def test_recall_at_k_and_ranks():
    assert recall_hit_at_k(["a", "b", "c"], {"c": 1}, 2) == 0.0
    assert recall_hit_at_k(["a", "a", "c"], {"c": 1}, 2) == 1.0  # the repeated id counts once
    assert first_positive_rank(["a", "b", "c"], {"c": 1}) == 3
    assert first_positive_rank(["a"], {"c": 1}) is None
    assert median_rank([1, 3, 10, 2]) == 2.5 and mean_rank([1, 3, 10, 2]) == 4.0
    assert math.isnan(median_rank([]))


def test_query_metrics_and_aggregate_with_a_missing_positive():
    names = ("r@1", "r@5", "median_rank", "mean_rank")
    q1 = query_metrics(["v1", "v2"], {"v1": 1}, names, missing_rank=1000)
    q2 = query_metrics(["v1", "v3", "v2"], {"v2": 1}, names, missing_rank=1000)
    q3 = query_metrics(["v1"], {"v9": 1}, names, missing_rank=1000)  # never retrieved: the worst rank
    assert (q1["rank"], q2["rank"], q3["rank"]) == (1.0, 3.0, 1000.0)
    agg = aggregate([q1, q2, q3], names)
    assert agg["r@1"] == pytest.approx(1 / 3) and agg["r@5"] == pytest.approx(2 / 3)
    assert agg["median_rank"] == 3.0 and agg["mean_rank"] == pytest.approx(1004 / 3)


def test_genecis_ranks_within_the_query_gallery():
    # The run ranks two non-gallery images first; within the gallery the target is second.
    ranking = ["other1", "other2", "g1", "target", "g2"]
    gallery = ["target", "g1", "g2"]
    ranked = within_gallery(ranking, gallery)
    assert ranked == ["g1", "target", "g2"]
    rel = {"target": 1}
    assert [recall_hit_at_k(ranked, rel, k) for k in (1, 2, 3)] == [0.0, 1.0, 1.0]
    assert recall_hit_at_k(ranking, rel, 2) == 0.0  # not ranked within the gallery, it would miss


def test_choice_accuracy_is_strict():
    assert choice_correct({"pos": 0.9, "neg": 0.1}, "pos", ["pos", "neg"]) == 1.0
    assert choice_correct({"pos": 0.5, "neg": 0.5}, "pos", ["pos", "neg"]) == 0.0  # a tie is wrong
    assert choice_correct({"pos": 0.5}, "pos", ["pos", "neg"]) == 1.0  # an option absent never wins
    assert choice_correct({"neg": 0.1}, "pos", ["pos", "neg"]) == 0.0
