from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.retrieval.fixtures import brute_force, tie_heavy_vectors, write_embeddings
from umarvel_cli.app import app
from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.trec import read_trec_run

runner = CliRunner()


@pytest.fixture
def data(tmp_path):
    c = tie_heavy_vectors(40, seed=21)
    q = tie_heavy_vectors(6, seed=22)
    write_embeddings(tmp_path / "c", [f"d{i}" for i in range(40)], c, rows_per_shard=9)
    write_embeddings(tmp_path / "q", [f"q{i}" for i in range(6)], q, side="queries")
    return tmp_path, q, c


def _ranked(table, qid):
    rows = [r for r in table.to_pylist() if r["qid"] == qid]
    return [r["did"] for r in sorted(rows, key=lambda r: r["rank"])]


def test_exact_and_index_search_write_the_same_run(data):
    tmp, q, c = data
    r = runner.invoke(
        app,
        [
            "search",
            "--queries",
            str(tmp / "q"),
            "--candidates",
            str(tmp / "c"),
            "--topk",
            "5",
            "--out",
            str(tmp / "run_exact"),
            "--trec",
            str(tmp / "exact.trec"),
            "--batch-size",
            "4",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "6 queries, 30 rows (exact, cpu)" in r.output
    run = read_table(tmp / "run_exact", "run")
    _, ref = brute_force(q, c, 5)
    for n in range(6):
        assert _ranked(run, f"q{n}") == [f"d{i}" for i in ref[n]]
    assert sorted(set(run.column("rank").to_pylist())) == [1, 2, 3, 4, 5]
    assert read_trec_run(tmp / "exact.trec").to_pylist()[0]["qid"] == "q0"

    pytest.importorskip("faiss")
    assert (
        runner.invoke(app, ["index", "--candidates", str(tmp / "c"), "--out", str(tmp / "idx")]).exit_code
        == 0
    )
    r = runner.invoke(
        app,
        [
            "search",
            "--queries",
            str(tmp / "q"),
            "--index",
            str(tmp / "idx"),
            "--topk",
            "5",
            "--out",
            str(tmp / "run_idx"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert read_table(tmp / "run_idx", "run").to_pylist() == run.to_pylist()


def test_search_needs_exactly_one_source(data):
    tmp, _, _ = data
    r = runner.invoke(app, ["search", "--queries", str(tmp / "q"), "--out", str(tmp / "o")])
    assert r.exit_code == 2 and "exactly one of --index or --candidates" in r.output
    r = runner.invoke(
        app,
        [
            "search",
            "--queries",
            str(tmp / "q"),
            "--candidates",
            str(tmp / "c"),
            "--topk",
            "0",
            "--out",
            str(tmp / "o"),
        ],
    )
    assert r.exit_code == 2 and "--topk" in r.output
