"""U-MARVEL+ fusion: each candidate fused with its own cosine, re-sorted; W chosen on val only;
`eval mbeir --rerank-scores / --rerank` reports retrieval-only and reranked side by side."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.reranking.fixtures import QUERIES, local_rows, write_prepared, write_run
from umarvel_cli.app import app
from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, write_manifest
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.tiny import init_tiny_model
from umarvel_cli.reranking.fusion import fuse_run, tune_weight
from umarvel_cli.reranking.teacher import STAGE, read_teacher


def _run(rows: list[tuple[str, str, float]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"qid": q, "did": d, "rank": i + 1, "score": s} for i, (q, d, s) in enumerate(rows)],
        schema=TABLES["run"],
    )


def _teacher(rows: list[tuple[str, str, float]], score_of=None) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "qid": q,
                "did": d,
                "rank": 0,
                "retrieval_score": -9.0 if score_of is None else score_of(q, d),
                "rerank_score": p,
            }
            for q, d, p in rows
        ],
        schema=TABLES["teacher"],
    )


def write_teacher(root, rows, score_of=None):
    with ShardWriter(root, "teacher", TABLES["teacher"]) as w:
        w.write_batch(_teacher(rows, score_of))
    write_manifest(root, Manifest(stage=STAGE, params={}))
    return root


def _order(run: pa.Table) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for r in run.sort_by([("qid", "ascending"), ("rank", "ascending")]).to_pylist():
        out.setdefault(r["qid"], []).append((r["did"], round(r["score"], 4)))
    return out


def test_each_candidate_is_fused_with_its_own_cosine_and_re_sorted():
    run = _run(
        [("q", "a", 0.9), ("q", "b", 0.8), ("q", "c", 0.7), ("q", "d", 0.6), ("r", "a", 0.5), ("r", "e", 0.4)]
    )
    # teacher rows in another order than the run, and its own retrieval_score column is NOT what is fused
    teacher = _teacher([("q", "c", 1.0), ("q", "a", 0.0), ("q", "b", 0.5), ("r", "e", 1.0), ("r", "a", 0.0)])
    fused = fuse_run(run, teacher, 0.3)
    assert _order(fused) == {
        "q": [("c", 1.0), ("b", 0.95), ("a", 0.9), ("d", 0.6)],  # d was not reranked: stays below
        "r": [("e", 0.7), ("a", 0.5)],
    }
    per_task = fuse_run(run, teacher, {"tq": 0.05, "default": 1.0}, task_of={"q": "tq", "r": "tr"})
    assert _order(per_task)["q"] == [("a", 0.9), ("b", 0.825), ("c", 0.75), ("d", 0.6)]
    assert _order(per_task)["r"] == [("e", 1.4), ("a", 0.5)]
    # a candidate outside the reranked top-k never rises above the lowest fused one (cap)
    low = fuse_run(_run([("q", "a", 0.5), ("q", "b", 0.9)]), _teacher([("q", "a", 0.0)]), 1.0)
    assert _order(low) == {"q": [("a", 0.5), ("b", 0.5)]}


def test_teacher_pairs_the_run_does_not_hold_and_bad_weights_are_refused():
    run = _run([("q", "a", 0.9), ("q", "b", 0.8), ("r", "b", 0.1)])
    with pytest.raises(
        UmarvelError, match=r"1 did\(s\) of the teacher scores are not in the run \(e.g. 'zz'\)"
    ):
        fuse_run(run, _teacher([("q", "zz", 0.5)]), 0.1)
    with pytest.raises(UmarvelError, match=r"1 qid\(s\) of the teacher scores are not in the run"):
        fuse_run(run, _teacher([("x", "a", 0.5)]), 0.1)
    with pytest.raises(
        UmarvelError, match=r"1 teacher row\(s\) name a \(qid, did\) pair the run does not hold"
    ):
        fuse_run(run, _teacher([("r", "a", 0.5)]), 0.1)  # both ids known, the pair is not
    with pytest.raises(UmarvelError, match="fusion weight -1.0 is not a finite number >= 0"):
        fuse_run(run, _teacher([("q", "a", 0.5)]), -1.0)


def _positive_teacher(split: str) -> list[tuple[str, str, float]]:
    """P(Yes) 1 for the positive, 0 for the others, over the whole local pool of each query."""
    return [(r["qid"], r["did"], 1.0 if r["did"] in QUERIES[r["qid"]][4] else 0.0) for r in local_rows(split)]


def test_tune_weight_picks_the_smallest_best_w_of_the_grid():
    def cosine(q, d):
        return 0.1 if d in QUERIES[q][4] else 0.85 - 0.1 * int(d[-1])

    run = pa.Table.from_pylist(local_rows("val", cosine), schema=TABLES["run"])
    teacher = _teacher(_positive_teacher("val"))
    qids = ["9:v0", "2:v0"]
    task_of = {"9:v0": "mscoco_task0", "2:v0": "webqa_task1"}
    qrels = {q: {d: 1 for d in QUERIES[q][4]} for q in qids}
    # the positive has cosine 0.1 and the best other 0.85: it reaches rank 1 once W > 0.75
    tuning = tune_weight(run, teacher, qids, task_of, qrels, {"mscoco_task0": 1, "webqa_task1": 1}, [])
    assert tuning.weight == 0.8 and tuning.grid[8] == 0.8
    assert tuning.val_scores[:8] == [0.0] * 8 and tuning.val_scores[8:] == [1.0] * 13
    assert tuning.to_json()["split"] == "val"
    # Recall@5 over pools of 3 and 4 is a hit whatever W: MRR@10 breaks the tie (positive last -> first)
    flat = tune_weight(run, teacher, qids, task_of, qrels, {"mscoco_task0": 5, "webqa_task1": 5}, [])
    assert flat.val_scores == [1.0] * 21 and flat.weight == 0.8
    assert flat.val_mrr10[0] == pytest.approx((1 / 4 + 1 / 3) / 2) and flat.val_mrr10[8] == 1.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    data = write_prepared(root / "data")
    return (
        data,
        write_run(root / "run", local_rows("test")),
        write_run(root / "val_run", local_rows("val")),
        root,
    )


def _eval(*args):
    return CliRunner().invoke(app, ["eval", "mbeir", *map(str, args)])


def test_eval_with_rerank_scores_reports_both_side_by_side(world, tmp_path):
    data, run, _, root = world
    scores = write_teacher(root / "teacher", _positive_teacher("test"))
    out = tmp_path / "ev"
    res = _eval("--data", data, "--run", run, "--out", out, "--rerank-scores", scores, "--rerank-weight", 1.0)
    assert res.exit_code == 0, res.output
    record = json.loads((out / "metrics.json").read_text())
    assert record["headline"]["mean"] == 1.0  # every positive fused to rank 1
    before = record["rerank"]["retrieval_only"]
    assert [t["score"] for t in before["tasks"]] == [1.0, 1.0]  # R@5 of pools of 4 and 3: always a hit
    mrr = {t["task"]: t["metrics"]["mrr@10"] for t in before["tasks"]}
    assert mrr == pytest.approx({"mscoco_task0": 0.25, "webqa_task1": 1 / 3})  # positive last before
    assert [t["metrics"]["mrr@10"] for t in record["tasks"]] == [1.0, 1.0]  # and first after
    assert record["rerank"]["weight"] == 1.0 and record["rerank"]["weight_source"] == "given"
    assert "retrieval only\t1.0000\t(reranked: W = 1.0)" in res.output
    report = (out / "report.md").read_text()
    assert "| retrieval only (before rerank) | " in report and "| **umarvel (this run)** |" in report
    assert "U-MARVEL+: 25 candidates of 7 queries reranked, fused = cosine + 1.0 x P(Yes)" in report
    trec = (out / "run.trec").read_text().splitlines()
    assert trec[0].split()[:4] == ["2:q0", "Q0", "2:c0", "1"]


def test_eval_tunes_w_on_val_with_a_reranker(world, tmp_path):
    data, run, val_run, root = world
    model = init_tiny_model("tiny-qwen2-vl", tmp_path / "rr", seed=0, kind="reranker")
    out = tmp_path / "ev"
    args = ["--data", data, "--run", run, "--out", out, "--rerank", model, "--rerank-topk", 2]
    res = _eval(*args, "--tune-weight-on", "val", "--val-run", val_run)
    assert res.exit_code == 0, res.output
    record = json.loads((out / "metrics.json").read_text())
    tuning = record["rerank"]["tuning"]
    assert tuning["split"] == "val" and len(tuning["val_scores"]) == len(tuning["grid"]) == 21
    assert record["rerank"]["weight"] == tuning["chosen"] in tuning["grid"]
    assert set(read_teacher(out / "rerank-val").column("qid").to_pylist()) == {"9:v0", "2:v0"}
    assert read_teacher(out / "rerank-test").num_rows == 14  # 7 test queries x top-2
    no_val = _eval(*args[:-4], "--out", tmp_path / "x", "--rerank", model, "--tune-weight-on", "val")
    assert no_val.exit_code == 2 and "needs a validation run" in no_val.output


def test_eval_refuses_teacher_scores_of_other_queries(world, tmp_path):
    data, run, _, root = world
    scores = write_teacher(root / "val_teacher", _positive_teacher("val"))  # val queries, test run
    res = _eval("--data", data, "--run", run, "--out", tmp_path / "ev", "--rerank-scores", scores)
    assert res.exit_code == 2
    assert "qid(s) of the teacher scores are not in the test split of the tables" in " ".join(
        res.output.split()
    )
    assert not (tmp_path / "ev" / "metrics.json").exists()


def test_eval_refuses_an_interrupted_teacher_table(world, tmp_path):
    data, run, _, root = world
    scores = write_teacher(tmp_path / "teacher", _positive_teacher("test"))
    (scores / "manifest.json").unlink()
    (scores / "_progress.json").write_text('{"key": "x", "stage": "rerank-score"}\n')
    res = _eval("--data", data, "--run", run, "--out", tmp_path / "ev", "--rerank-scores", scores)
    assert res.exit_code == 2 and "interrupted teacher table" in " ".join(res.output.split())
    assert not (tmp_path / "ev").exists()


def test_eval_refuses_an_embedding_model_as_reranker_before_writing(world, tmp_path):
    data, run, _, _ = world
    embedding = init_tiny_model("tiny-qwen2-vl", tmp_path / "emb")
    res = _eval("--data", data, "--run", run, "--out", tmp_path / "ev", "--rerank", embedding)
    assert res.exit_code == 2 and "this is an embedding model, not a reranker" in " ".join(res.output.split())
    assert not (tmp_path / "ev").exists()


def test_eval_with_a_model_searches_val_here_to_tune_w(demo_tables, tiny_models, tmp_path):
    """--model with --tune-weight-on val: the val run is searched here and reranked, never test."""
    model = init_tiny_model("tiny-qwen2-vl", tmp_path / "rr", seed=0, kind="reranker")
    out = tmp_path / "ev"
    res = _eval("--data", demo_tables, "--split", "test", "--model", tiny_models["tiny-qwen2-vl"], "--topk", 10,
                "--out", out, "--rerank", model, "--rerank-topk", 2, "--tune-weight-on", "val")  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((out / "metrics.json").read_text())
    assert record["rerank"]["tuning"]["split"] == "val" and record["rerank"]["weight_source"] != "given"
    val_qids = set(read_teacher(out / "rerank-val").column("qid").to_pylist())
    test_qids = set(read_teacher(out / "rerank-test").column("qid").to_pylist())
    assert val_qids and test_qids and not val_qids & test_qids
