from __future__ import annotations

import pytest

from tests.evaluation.fixtures import e
from tests.retrieval.fixtures import write_embeddings
from umarvel_cli.artifacts.trec import QrelRow, write_qrels
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation import evaluate_pairs


def test_pairs_benchmark_recall_and_map(tmp_path):
    import numpy as np

    gallery = np.stack([e((i, 1.0)) for i in range(6)])
    write_embeddings(tmp_path / "g", [f"g{i}" for i in range(6)], gallery)
    # qa: g0 first, g1 second (both relevant); qb: g5 relevant but ranked after a 5-way tie
    qa = e((0, 1.0), (1, 0.5))
    qb = e((0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 0.5))
    write_embeddings(tmp_path / "q", ["qa", "qb", "qc"], np.stack([qa, qb, e((5, 1.0))]), side="queries")
    qrels = write_qrels(
        tmp_path / "qrels.txt",
        [QrelRow("qa", "g0", 1, None), QrelRow("qa", "g1", 1, None), QrelRow("qb", "g5", 1, None)],
    )
    res = evaluate_pairs(tmp_path / "q", tmp_path / "g", qrels, cutoffs=(1, 5, 10), map_cutoffs=(5, 10))
    assert res["n_queries"] == 3 and res["n_candidates"] == 6 and res["n_without_qrels"] == 1
    m = res["metrics"]
    assert m["hit@1"] == pytest.approx(1 / 3)
    assert m["hit@5"] == pytest.approx(1 / 3)  # qb's positive is 6th
    assert m["hit@10"] == pytest.approx(2 / 3)
    # qa: AP@5 = (1/1 + 2/2) / 2 = 1; qb: 0 at @5, (1/6) / 1 at @10; qc: 0
    assert m["map@5"] == pytest.approx(1 / 3)
    assert m["map@10"] == pytest.approx((1 + 1 / 6) / 3)
    bad = write_qrels(tmp_path / "bad.txt", [QrelRow("zz", "g0", 1, None)])
    with pytest.raises(UmarvelError, match="no query embedding"):
        evaluate_pairs(tmp_path / "q", tmp_path / "g", bad)
