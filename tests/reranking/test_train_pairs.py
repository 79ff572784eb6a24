"""Reranker training pairs: one positive "Yes" and one mined non-positive "No" per query, seeded."""

from __future__ import annotations

from collections import Counter

from umarvel_cli.reranking.train_pairs import NO, YES, draw_pairs

POSITIVES = {"a": ["p1", "p2"], "b": ["p3"], "c": [], "d": ["p4"]}
MINED = {"a": ["p1", "n1", "n2", "n3"], "b": ["n4"], "c": ["n5"], "d": ["p4"]}


def test_one_positive_and_one_non_positive_negative_per_query():
    pairs, skipped = draw_pairs(["a", "b", "c", "d"], POSITIVES, MINED, seed=1)
    assert skipped == {
        "no_positive": 1,
        "no_negative": 1,
    }  # c has no positive; d's only mined id is its positive
    assert [(p.qid, p.answer) for p in pairs] == [("a", YES), ("a", NO), ("b", YES), ("b", NO)]
    assert pairs[0].did in POSITIVES["a"] and pairs[1].did in {"n1", "n2", "n3"}
    assert (pairs[2].did, pairs[3].did) == ("p3", "n4")


def test_draws_are_seeded_per_epoch_and_cover_the_choices():
    again, _ = draw_pairs(["a", "b"], POSITIVES, MINED, seed=1, epoch=3)
    assert again == draw_pairs(["a", "b"], POSITIVES, MINED, seed=1, epoch=3)[0]
    negatives = Counter(draw_pairs(["a"], POSITIVES, MINED, seed=1, epoch=e)[0][1].did for e in range(60))
    assert set(negatives) == {"n1", "n2", "n3"} and min(negatives.values()) >= 8  # uniform-ish, never p1
    alone, _ = draw_pairs(["b"], POSITIVES, MINED, seed=1, epoch=3)
    assert alone == again[2:]  # a query's draw does not depend on the others


POOL = {"a": ["p1", "p2", "p3", "p4"], "b": ["p3"]}  # per query, its task's training positives


def test_random_share_draws_other_positives_of_the_task_never_the_querys_own():
    draws = [draw_pairs(["a"], POSITIVES, MINED, 1, e, 0.5, POOL)[0][1].did for e in range(200)]
    counts = Counter(draws)
    assert set(counts) == {"p3", "p4", "n1", "n2", "n3"}  # never a or its own positives p1, p2
    assert 70 <= counts["p3"] + counts["p4"] <= 130  # about half of the 200 epochs
    always = {draw_pairs(["a"], POSITIVES, MINED, 1, e, 1.0, POOL)[0][1].did for e in range(40)}
    assert always == {"p3", "p4"}
    # b's task has no positive but its own: its mined list stands in
    assert draw_pairs(["b"], POSITIVES, MINED, 1, 0, 1.0, POOL)[0][1].did == "n4"


def test_random_share_zero_draws_as_released():
    for e in range(10):
        assert draw_pairs(["a", "b"], POSITIVES, MINED, 1, e, 0.0, POOL) == draw_pairs(
            ["a", "b"], POSITIVES, MINED, 1, e
        )
