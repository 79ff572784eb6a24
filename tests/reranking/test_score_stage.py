"""`rerank score`: the teacher table of a run's top-k, resumable by shard; the one per-task sampler;
one-line refusals that write nothing."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.reranking.fixtures import QUERIES, local_rows, write_prepared, write_run
from umarvel_cli.app import app
from umarvel_cli.artifacts import TABLES, ShardWriter, read_table
from umarvel_cli.data.subsample import sample_per_task
from umarvel_cli.embedding.sources import candidate_records, query_records
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.reranker import Reranker
from umarvel_cli.models.tiny import init_tiny_model
from umarvel_cli.reranking import score_stage
from umarvel_cli.reranking.teacher import read_teacher


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerank")
    data = write_prepared(root / "data")
    run = write_run(root / "run", local_rows("test"))
    model = init_tiny_model("tiny-qwen2-vl", root / "rr", seed=2, kind="reranker")
    return data, run, model


def _cli(*args) -> object:
    return CliRunner().invoke(app, ["rerank", "score", *map(str, args)])


def test_teacher_table_holds_p_yes_of_each_querys_top_k(world, tmp_path):
    data, run, model = world
    out = tmp_path / "teacher"
    res = _cli("--model", model, "--data", data, "--run", run, "--topk", 2, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "14 pairs of 7 queries" in res.output
    t = read_teacher(out).to_pylist()
    assert len(t) == 14 and {r["qid"] for r in t} == {q for q, v in QUERIES.items() if v[0] == "test"}
    expected_top = {}
    for r in local_rows("test"):
        if r["rank"] <= 2:
            expected_top[(r["qid"], r["did"])] = (r["rank"], r["score"])
    got = {(r["qid"], r["did"]): (r["rank"], round(r["retrieval_score"], 5)) for r in t}
    assert got == {key: (rank, round(score, 5)) for key, (rank, score) in expected_top.items()}
    rr = Reranker.from_pretrained(model, device="cpu")
    queries = {r.id: r for r in query_records(data, "test")}
    cands = {r.id: r for r in candidate_records(data)}
    direct = rr.score([(queries[r["qid"]], cands[r["did"]]) for r in t], batch_size=1)
    np.testing.assert_allclose([r["rerank_score"] for r in t], direct, rtol=1e-4, atol=1e-6)
    again = _cli("--model", model, "--data", data, "--run", run, "--topk", 2, "--out", out, "--device", "cpu")
    assert again.exit_code == 0 and "is up to date" in " ".join(again.output.split())


def test_an_interrupted_table_is_refused_then_resumed_by_shard(world, tmp_path, monkeypatch):
    data, run, model = world
    out = tmp_path / "teacher"
    calls = []
    original = Reranker.score_inputs

    def failing(self, items, *args, **kwargs):
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, items, *args, **kwargs)

    monkeypatch.setattr(Reranker, "score_inputs", failing)
    kwargs = dict(run=run, topk=3, queries_per_shard=2, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        score_stage.rerank_score(model, data, out, **kwargs)
    assert len(list((out / "teacher").glob("part-*.parquet"))) == 2
    with pytest.raises(UmarvelError, match="interrupted teacher table"):
        read_teacher(out)
    calls.clear()
    manifest = score_stage.rerank_score(model, data, out, **kwargs)
    assert calls == [6, 3]  # the two chunks left: 2 queries x 3, then 1 query x 3 (7 queries, 2 per shard)
    assert manifest.counts == {"queries": 7, "pairs": 21, "shards": 4}
    monkeypatch.setattr(Reranker, "score_inputs", original)
    fresh = score_stage.rerank_score(model, data, tmp_path / "fresh", **kwargs)
    assert fresh.counts == manifest.counts
    assert read_teacher(out).equals(read_teacher(tmp_path / "fresh"))


def test_sample_flag_scores_a_share_of_each_task(world, tmp_path):
    data, run, model = world
    m = score_stage.rerank_score(
        model, data, tmp_path / "s", run=run, topk=1, sample=0.5, seed=3, device="cpu"
    )
    assert m.extra["queries_per_task"] == {"mscoco_task0": 2, "webqa_task1": 1}
    qids = set(read_teacher(tmp_path / "s").column("qid").to_pylist())
    test_qids = [q for q, v in QUERIES.items() if v[0] == "test"]
    task_of = {q: "mscoco_task0" if q[0] == "9" else "webqa_task1" for q in test_qids}
    assert qids == set(sample_per_task(test_qids, task_of, 0.5, seed=3))


@pytest.mark.parametrize("case", ["embedding_model", "reranker_as_retriever", "unknown_ids", "no_source"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(world, tmp_path, case):
    data, run, model = world
    out = tmp_path / "out"
    args = ["--data", data, "--out", out, "--device", "cpu"]
    if case == "embedding_model":
        emb = init_tiny_model("tiny-qwen2-vl", tmp_path / "emb")
        res, text = _cli("--model", emb, "--run", run, *args), "this is an embedding model, not a reranker"
    elif case == "reranker_as_retriever":
        res = _cli("--model", model, "--retriever", model, "--split", "test", *args)
        text = "this is a reranker, not an embedding model"
    elif case == "unknown_ids":
        bad = write_run(
            tmp_path / "bad", [*local_rows("test"), {"qid": "9:q0", "did": "9:zz", "rank": 9, "score": 0.0}]
        )
        res, text = _cli("--model", model, "--run", bad, *args), "1 candidate id(s) of the run are not in"
    else:
        res, text = _cli("--model", model, *args), "give exactly one of --run or --retriever"
    assert res.exit_code == 2, res.output
    assert text in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists()


def test_non_finite_teacher_scores_are_refused(world, tmp_path):
    data, run, model = world
    out = tmp_path / "t"
    score_stage.rerank_score(model, data, out, run=run, topk=1, device="cpu")
    table = read_table(out, "teacher")
    scores = table.column("rerank_score").to_pylist()
    scores[3] = math.nan
    with ShardWriter(out, "teacher", TABLES["teacher"]) as w:
        w.write_batch(table.set_column(4, "rerank_score", pa.array(scores, pa.float32())))
    with pytest.raises(UmarvelError, match=r"1 non-finite rerank_score value\(s\) \(e.g. nan for "):
        read_teacher(out)


def test_retriever_searches_here_with_the_eval_search(world, tmp_path):
    data, _, model = world
    retriever = init_tiny_model("tiny-qwen2-vl", tmp_path / "emb", seed=4)
    out = tmp_path / "t"
    m = score_stage.rerank_score(model, data, out, retriever=retriever, split="test", topk=2, device="cpu")
    assert m.counts == {"queries": 7, "pairs": 14, "shards": 1} and m.params["pool"] == "local"
    run = read_table(out / "retrieval", "run").to_pylist()
    top2 = {(r["qid"], r["did"]): (r["rank"], round(r["score"], 5)) for r in run if r["rank"] <= 2}
    teacher = read_teacher(out).to_pylist()
    assert {(r["qid"], r["did"]): (r["rank"], round(r["retrieval_score"], 5)) for r in teacher} == top2
    assert all(r["did"].split(":")[0] == r["qid"].split(":")[0] for r in teacher)  # each task's own pool


def test_a_tokenizer_without_single_token_answers_is_refused(world, tmp_path):
    from umarvel_cli.models.inputs.tokenizer import build_byte_tokenizer

    data, run, model = world
    folder = init_tiny_model("tiny-qwen2-vl", tmp_path / "bytes", kind="reranker")
    build_byte_tokenizer(("<instruction_start>", "<instruction_end>", "<emb>")).save_pretrained(folder)
    out = tmp_path / "out"
    res = _cli("--model", folder, "--data", data, "--run", run, "--out", out)
    assert res.exit_code == 2 and not out.exists()
    assert "the tokenizer encodes 'Yes' as 3 tokens" in " ".join(res.output.split())
