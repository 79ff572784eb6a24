from __future__ import annotations

import math

import pytest

from umarvel_cli.metrics.ranking import (
    average_precision_at_k,
    hit_at_k,
    ndcg_at_k,
    order_by_score,
    query_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    top_distinct,
)

RANKING = ["a", "b", "c", "d", "e", "f"]


def test_hit_is_uniir_recall_with_several_positives():
    rel = {"c": 1, "f": 1, "zz": 1}
    assert hit_at_k(RANKING, rel, 2) == 0.0
    assert hit_at_k(RANKING, rel, 3) == 1.0
    # true recall counts the share of positives: 1 of 3 in the top 3, 2 of 3 in the top 6
    assert recall_at_k(RANKING, rel, 3) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, rel, 6) == pytest.approx(2 / 3)


def test_positive_missing_from_pool_caps_recall_ndcg_and_ap():
    rel = {"a": 1, "not-in-pool": 1}
    assert hit_at_k(RANKING, rel, 1) == 1.0
    assert recall_at_k(RANKING, rel, 10) == 0.5
    # dcg = 1/log2(2) = 1; ideal = 1 + 1/log2(3)
    assert ndcg_at_k(RANKING, rel, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # AP@5: precision@1 = 1 at the one hit, divided by min(5, 2)
    assert average_precision_at_k(RANKING, rel, 5) == pytest.approx(0.5)


def test_query_without_positives_scores_zero():
    for rel in ({}, {"a": 0}):
        m = query_metrics(RANKING, rel, cutoffs=(1, 5), map_cutoffs=(5,))
        assert set(m.values()) == {0.0}
        assert set(m) == {"hit@1", "recall@1", "hit@5", "recall@5", "mrr@10", "ndcg@10", "map@5"}


def test_fewer_than_k_candidates():
    short = ["x", "p"]
    rel = {"p": 1}
    assert hit_at_k(short, rel, 100) == 1.0
    assert recall_at_k(short, rel, 100) == 1.0
    assert reciprocal_rank_at_k(short, rel, 10) == 0.5
    assert ndcg_at_k(short, rel, 10) == pytest.approx(1 / math.log2(3))
    assert average_precision_at_k(short, rel, 50) == pytest.approx(0.5)
    assert hit_at_k([], rel, 5) == 0.0


def test_duplicates_count_once_and_do_not_take_a_slot():
    dup = ["a", "a", "a", "b", "p"]
    rel = {"a": 1, "p": 1}
    assert top_distinct(dup, 3) == ["a", "b", "p"]
    assert recall_at_k(dup, rel, 2) == 0.5  # 'a' counted once, not three times
    assert recall_at_k(dup, rel, 3) == 1.0  # 'p' is the 3rd distinct candidate
    # AP@3 with hits at distinct ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision_at_k(dup, rel, 3) == pytest.approx((1 + 2 / 3) / 2)
    # duplicated positive cannot push NDCG above 1
    assert ndcg_at_k(["a", "a", "p"], rel, 10) == pytest.approx(1.0)


def test_mrr_cut_at_k():
    ranking = [str(i) for i in range(20)]
    assert reciprocal_rank_at_k(ranking, {"3": 1}, 10) == 0.25
    assert reciprocal_rank_at_k(ranking, {"12": 1}, 10) == 0.0


def test_ndcg_graded_relevance():
    rel = {"b": 2, "a": 1}
    # dcg = 1/log2(2) + 2/log2(3); ideal = 2/log2(2) + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "b"], rel, 10) == pytest.approx(expected)


def test_circo_map_with_several_positives():
    rel = {"b": 1, "d": 1, "q": 1, "r": 1, "s": 1, "t": 1}
    # hits at ranks 2 and 4 among the top 5: (1/2 + 2/4) / min(5, 6)
    assert average_precision_at_k(RANKING, rel, 5) == pytest.approx(1.0 / 5)


def test_tie_rule_score_then_rank_then_id():
    ids = ["c", "a", "b", "d"]
    scores = [0.5, 0.9, 0.5, 0.5]
    assert order_by_score(ids, scores) == ["a", "b", "c", "d"]
    assert order_by_score(ids, scores, ranks=[2, 1, 4, 3]) == ["a", "c", "d", "b"]
    # the rule decides hit@2 on ties, deterministically
    assert hit_at_k(order_by_score(ids, scores), {"c": 1}, 2) == 0.0
    assert hit_at_k(order_by_score(ids, scores, [2, 1, 4, 3]), {"c": 1}, 2) == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        order_by_score(["a"], [1.0, 2.0])
    with pytest.raises(ValueError):
        top_distinct(["a"], 0)


def test_query_metrics_equals_single_metric_functions():
    import random

    rng = random.Random(0)
    for _ in range(300):
        pool = [f"d{i}" for i in range(30)]
        ranking = [rng.choice(pool) for _ in range(rng.randint(0, 60))]
        relevant = {d: rng.choice([0, 1, 1, 2]) for d in rng.sample(pool + ["absent"], rng.randint(0, 6))}
        m = query_metrics(ranking, relevant, cutoffs=(1, 3, 10, 50), map_cutoffs=(5, 25))
        for k in (1, 3, 10, 50):
            assert m[f"hit@{k}"] == hit_at_k(ranking, relevant, k)
            assert m[f"recall@{k}"] == pytest.approx(recall_at_k(ranking, relevant, k))
        assert m["mrr@10"] == pytest.approx(reciprocal_rank_at_k(ranking, relevant, 10))
        assert m["ndcg@10"] == pytest.approx(ndcg_at_k(ranking, relevant, 10))
        for k in (5, 25):
            assert m[f"map@{k}"] == pytest.approx(average_precision_at_k(ranking, relevant, k))
