from __future__ import annotations

import pytest

from umarvel_cli.metrics.aggregate import evaluate_queries, summarize_tasks


def test_per_task_means_order_and_unweighted_mean():
    rankings = {
        "q1": ["d1", "x", "y"],
        "q2": ["x", "y", "d2"],
        "q3": ["z", "d3"],
        "q4": ["d4"],
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}, "q5": {"d5": 1}}
    qids = ["q1", "q2", "q3", "q4", "q5", "q6"]
    outcomes = evaluate_queries(qids, rankings, qrels, cutoffs=(1, 2))
    task_of = {"q1": "t_b", "q2": "t_b", "q3": "t_a", "q4": "t_c", "q5": "t_c", "q6": "t_c"}
    summary = summarize_tasks(outcomes, task_of, {"t_a": 2, "t_b": 1, "t_c": 1}, order=["t_a", "t_b", "t_x"])
    assert [t.task for t in summary.tasks] == ["t_a", "t_b", "t_c"]
    by = summary.by_task
    assert by["t_a"].score == 1.0  # d3 at rank 2, k=2
    assert by["t_b"].score == 0.5  # q1 hit@1, q2 not
    assert by["t_c"].score == pytest.approx(1 / 3)  # q4 hit; q5 no results; q6 no qrels
    assert by["t_c"].n_queries == 3
    assert by["t_c"].n_without_results == 2
    assert by["t_c"].n_without_qrels == 1
    assert summary.mean == pytest.approx((1.0 + 0.5 + 1 / 3) / 3)
    assert summary.missing == ["t_x"]
    assert by["t_b"].metrics["hit@2"] == 0.5
    assert by["t_b"].metrics["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)


def test_headline_needs_its_cutoff():
    outcomes = evaluate_queries(["q"], {"q": ["d"]}, {"q": {"d": 1}}, cutoffs=(1,))
    with pytest.raises(ValueError, match="hit@10"):
        summarize_tasks(outcomes, {"q": "t"}, {"t": 10})
