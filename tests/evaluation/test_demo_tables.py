"""`eval mbeir --run` on the demo tables that `prepare mbeir` writes (the shared session fixture)."""

from __future__ import annotations

import pytest

from umarvel_cli.artifacts import read_table
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.evaluation import evaluate_mbeir


@pytest.fixture(scope="module")
def perfect_run(demo_tables, tmp_path_factory):
    """Every test query's judged positives first (score 1/rank), then one non-positive candidate."""
    qrels = read_table(demo_tables, "qrels").to_pylist()
    queries = [q for q in read_table(demo_tables, "queries").to_pylist() if q["split"] == "test"]
    some_did = read_table(demo_tables, "candidates", columns=["did"]).column("did")[0].as_py()
    positives: dict[str, list[str]] = {}
    for r in qrels:
        if r["split"] == "test":
            positives.setdefault(r["qid"], []).append(r["did"])
    lines = []
    for q in queries:
        ranked = positives.get(q["qid"], []) + [some_did]
        lines += [f"{q['qid']} Q0 {d} {i} {1 / i:.6f} perfect" for i, d in enumerate(ranked, start=1)]
    path = tmp_path_factory.mktemp("runs") / "perfect.trec"
    path.write_text("\n".join(lines) + "\n")
    return path, queries, positives


def test_perfect_run_scores_the_share_of_queries_with_positives(demo_tables, perfect_run, tmp_path):
    run, queries, positives = perfect_run
    spec = load_mbeir_spec()
    local = evaluate_mbeir(demo_tables, "test", "local", tmp_path / "local", run=run)
    # all 16 tasks, in UniIR's order
    assert [t["task"] for t in local["tasks"]] == spec.order
    for t in local["tasks"]:
        mine = [q for q in queries if f"{spec.datasets[q['dataset_id']]}_task{q['task_id']}" == t["task"]]
        with_pos = sum(1 for q in mine if q["qid"] in positives)
        assert t["n_queries"] == len(mine)
        assert t["n_without_qrels"] == len(mine) - with_pos
        assert t["score"] == pytest.approx(with_pos / len(mine))
    glob = evaluate_mbeir(demo_tables, "test", "global", tmp_path / "global", run=run)
    assert glob["headline"]["mean"] == pytest.approx(local["headline"]["mean"])
    assert glob["setting"].startswith("global union pool")
    # demo data, even read by `prepare mbeir`, is not compared with published M-BEIR numbers
    report = (tmp_path / "local" / "report.md").read_text()
    assert "U-MARVEL" not in report and "these tables are not M-BEIR" in report
