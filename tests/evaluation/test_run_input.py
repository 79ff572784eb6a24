from __future__ import annotations

import random

import pyarrow as pa
import pytest

from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, write_manifest
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.run_input import read_run, to_rankings
from umarvel_cli.metrics.ranking import order_by_score


def _random_run(seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for q in range(20):
        n = rng.randint(1, 15)
        for rank in rng.sample(range(1, 40), n):
            rows.append(
                {
                    "qid": f"q{q}",
                    "did": f"d{rng.randint(0, 9)}",
                    "rank": rank,
                    "score": rng.choice([0.5, 0.25, 1.0]),
                }
            )
    rng.shuffle(rows)
    return pa.Table.from_pylist(rows, schema=TABLES["run"])


def test_arrow_grouping_follows_the_metric_tie_rule():
    run = _random_run()
    got = to_rankings(run)
    names = got.dictionary.to_pylist()
    for qid in {r["qid"] for r in run.to_pylist()}:
        rows = [r for r in run.to_pylist() if r["qid"] == qid]
        expected = order_by_score(
            [r["did"] for r in rows], [r["score"] for r in rows], [r["rank"] for r in rows]
        )
        assert [names[c] for c in got.by_qid[qid]] == expected


def test_codes_for_unretrieved_positives_are_distinct_and_negative():
    got = to_rankings(_random_run())
    rel = got.relevance({"q1": {"d1": 1, "never-a": 1, "never-b": 2}})
    codes = rel["q1"]
    assert len(codes) == 3 and sum(1 for c in codes if c < 0) == 2
    assert sorted(codes.values()) == [1, 1, 2]


def test_read_run_accepts_search_outputs_and_refuses_others(tmp_path):
    run = _random_run(1)
    with ShardWriter(tmp_path / "s", "run", TABLES["run"]) as w:
        w.write_batch(run)
    with pytest.raises(UmarvelError, match="no manifest.json"):  # an unfinished search
        read_run(tmp_path / "s")
    write_manifest(tmp_path / "s", Manifest(stage="search", params={}, counts={"rows": run.num_rows}))
    assert read_run(tmp_path / "s").num_rows == run.num_rows
    assert read_run(tmp_path / "s" / "run").num_rows == run.num_rows
    with pytest.raises(UmarvelError, match="not a run"):
        read_run(tmp_path)
