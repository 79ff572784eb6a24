"""`umarvel eval zeroshot --rerank`: U-MARVEL+ fusion on a zero-shot benchmark (demo-format CIRCO)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, read_table, write_manifest
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.data.zeroshot.demo import write_circo_demo
from umarvel_cli.evaluation import zeroshot
from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot
from umarvel_cli.evaluation.zeroshot_rerank import ZeroshotRerank
from umarvel_cli.models.tiny import init_tiny_model
from umarvel_cli.reranking.fusion import WEIGHT_GRID

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """CIRCO demo release, its val and test tables, a tiny retriever's runs over both, a tiny reranker."""
    from tests.models.tiny_models import tiny_model_dir

    root = tmp_path_factory.mktemp("circo-rerank")
    write_circo_demo(root / "CIRCO", seed=0, n_gallery=8, n_queries=3)
    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    w = {
        "root": root,
        "model": model,
        "reranker": init_tiny_model("tiny-qwen2-vl", root / "rr", seed=2, kind="reranker"),
    }
    for split in ("val", "test"):
        prepare_zeroshot("circo", root / "CIRCO", root / split, split=split)
        evaluate_zeroshot("circo", root / split, root / f"retrieval-{split}", model=model)
        w[split] = root / split
        w[f"{split}_run"] = root / f"retrieval-{split}" / "run.trec"
    return w


def _order(trec: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in trec.read_text().splitlines():
        q, _, d, *_ = line.split()
        out.setdefault(q, []).append(d)
    return out


def _write_teacher(root: Path, rows: list[tuple[str, str, float]]) -> Path:
    table = pa.Table.from_pylist(
        [{"qid": q, "did": d, "rank": 0, "retrieval_score": 0.0, "rerank_score": p} for q, d, p in rows],
        schema=TABLES["teacher"],
    )
    with ShardWriter(root, "teacher", TABLES["teacher"]) as w:
        w.write_batch(table)
    write_manifest(root, Manifest(stage="rerank-score", params={"pinned": sorted(map(list, rows))}))
    return root


def test_weight_zero_keeps_the_retrieval_run_and_a_positive_weight_changes_it(world, tmp_path):
    opts = {"run": world["val_run"]}
    zero = evaluate_zeroshot(
        "circo",
        world["val"],
        tmp_path / "w0",
        **opts,
        rerank=ZeroshotRerank(reranker=world["reranker"], topk=5, weight=0.0),
    )
    assert _order(tmp_path / "w0/run.trec") == _order(world["val_run"])
    assert zero["rerank"]["weight"] == 0.0 and zero["rerank"]["weight_source"] == "given"
    assert zero["tasks"][0]["metrics"] == zero["rerank"]["retrieval_tasks"][0]["metrics"]
    assert zero["rerank"]["reranked_queries"] == 3 and zero["rerank"]["reranked_pairs"] == 3 * 5
    # the teacher scores made here are kept, and reused by the second evaluation
    teacher = tmp_path / "w0/rerank-retrieval"
    big = evaluate_zeroshot(
        "circo", world["val"], tmp_path / "w100", **opts,
        rerank=ZeroshotRerank(scores=teacher, topk=5, weight=100.0),
    )  # fmt: skip
    fused, before = _order(tmp_path / "w100/run.trec"), _order(world["val_run"])
    assert fused != before
    p_yes = {(r["qid"], r["did"]): r["rerank_score"] for r in read_table(teacher, "teacher").to_pylist()}
    for q, dids in fused.items():
        assert sorted(dids[:5]) == sorted(before[q][:5]) and dids[5:] == before[q][5:]  # only the top 5 move
        assert [p_yes[(q, d)] for d in dids[:5]] == sorted((p_yes[(q, d)] for d in dids[:5]), reverse=True)
    assert big["rerank"]["retrieval_tasks"] == zero["rerank"]["retrieval_tasks"]


def test_a_teacher_that_knows_the_targets_makes_map_at_5_one(world, tmp_path):
    qrels = read_table(world["val"], "qrels").to_pylist()
    truth = {(r["qid"], r["did"]) for r in qrels}
    run = [line.split() for line in world["val_run"].read_text().splitlines()]
    rows = [(q, d, 1.0 if (q, d) in truth else 0.0) for q, _, d, *_ in run]
    teacher = _write_teacher(tmp_path / "teacher", rows)
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo", "--data", str(world["val"]), "--run", str(world["val_run"]),
         "--rerank-scores", str(teacher), "--rerank-weight", "100", "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "(retrieval only)" in res.output and "reranked: W = 100 (given)" in res.output
    record = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert record["tasks"][0]["metrics"]["map@5"] == pytest.approx(1.0)
    plain = evaluate_zeroshot("circo", world["val"], tmp_path / "plain", run=world["val_run"])
    assert record["rerank"]["retrieval_tasks"][0]["metrics"] == plain["tasks"][0]["metrics"]
    report = (tmp_path / "ev/report.md").read_text()
    before = plain["tasks"][0]["metrics"]["map@5"]
    assert f"| circo | (i,t)→i | ranking | 3 | map@5 | 100.0 | {100 * before:.1f} | 36.2 |" in report
    assert "| reranked | retrieval only |" in report and "the 42 scored pairs of 3 queries" in report


def test_weight_tuned_on_val_for_test_records_the_grid_and_never_reads_test(world, tmp_path, monkeypatch):
    scored: list[Path] = []
    real = zeroshot._mean_headline

    def spy(spec, table, data):
        scored.append(Path(data))
        return real(spec, table, data)

    monkeypatch.setattr(zeroshot, "_mean_headline", spy)
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo", "--data", str(world["test"]), "--model", str(world["model"]),
         "--rerank", str(world["reranker"]), "--rerank-topk", "4", "--tune-weight-on", "val",
         "--tune-data", str(world["val"]), "--device", "cpu", "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert scored == [world["val"]] * len(WEIGHT_GRID)  # every W scored on val, nothing on test
    record = json.loads((tmp_path / "ev/metrics.json").read_text())
    tuning = record["rerank"]["tuning"]
    assert tuning["split"] == "val" and tuning["grid"] == list(WEIGHT_GRID)
    best = max(range(len(WEIGHT_GRID)), key=lambda i: (tuning["val_scores"][i], -i))
    assert tuning["chosen"] == WEIGHT_GRID[best] == record["rerank"]["weight"]
    assert record["rerank"]["weight_source"] == "tuned on val" and record["tasks"] == []  # test: no truth
    # the val scores are those of the val run fused with the val teacher at each W
    check = evaluate_zeroshot(
        "circo", world["val"], tmp_path / "check", run=tmp_path / "ev/tune-val.trec",
        rerank=ZeroshotRerank(scores=tmp_path / "ev/rerank-tune-val", topk=4, weight=WEIGHT_GRID[best]),
    )  # fmt: skip
    assert check["tasks"][0]["score"] == pytest.approx(tuning["val_scores"][best])
    submission = json.loads((tmp_path / "ev/circo_test_submission.json").read_text())
    fused = _order(tmp_path / "ev/run.trec")
    assert sorted(submission) == sorted(fused) and all(
        submission[q][:4] == [int(d) for d in fused[q][:4]] for q in fused
    )
    assert "W tuned on the val split" in (tmp_path / "ev/report.md").read_text()


@pytest.mark.parametrize(
    "case", ["tune_on_test", "tune_on_evaluated", "no_other_split", "weight_without_rerank", "wrong_tune_data",
             "both_sources", "embedding_as_reranker", "no_tune_data"],
)  # fmt: skip
def test_bad_rerank_input_is_one_line_exit_2_and_nothing_written(world, tmp_path, case):
    data, run, extra = world["test"], world["test_run"], ["--rerank", str(world["reranker"])]
    if case == "tune_on_test":
        extra += ["--tune-weight-on", "test", "--tune-data", str(world["test"])]
        text = "cannot tune the fusion weight on 'test' (the test split)"
    elif case == "tune_on_evaluated":
        data, run = world["val"], world["val_run"]
        extra += ["--tune-weight-on", "val", "--tune-data", str(world["val"])]
        text = "cannot tune the fusion weight on 'val' (the split being evaluated)"
    elif case == "no_other_split":
        from tests.data.zeroshot.releases import write_msrvtt

        data = tmp_path / "msrvtt"
        prepare_zeroshot("msrvtt", write_msrvtt(tmp_path / "m"), data)
        run = tmp_path / "m.trec"
        run.write_text("ret0 Q0 video7000 1 1.0 sys\n")
        extra += ["--tune-weight-on", "val", "--tune-data", str(world["val"])]
        text = "a fixed --rerank-weight (msrvtt has no other split)"
    elif case == "weight_without_rerank":
        extra, text = ["--rerank-weight", "0.5"], "a fusion weight needs --rerank-scores or --rerank"
    elif case == "wrong_tune_data":
        extra += [
            "--tune-weight-on",
            "val",
            "--tune-data",
            str(world["test"]),
            "--tune-run",
            str(world["val_run"]),
        ]
        text = "not the circo val tables"
    elif case == "both_sources":
        extra += ["--rerank-scores", str(tmp_path)]
        text = "give at most one of --rerank-scores or --rerank"
    elif case == "embedding_as_reranker":
        extra, text = ["--rerank", str(world["model"])], "this is an embedding model, not a reranker"
    else:
        extra += ["--tune-weight-on", "val"]
        text = "--tune-weight-on val needs its tables: --tune-data"
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo" if case != "no_other_split" else "msrvtt", "--data", str(data),
         "--run", str(run), *extra, "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert text in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("benchmark", ["genecis", "sugarcrepe"])
def test_gallery_and_choice_tasks_are_reranked_within_each_gallery(tmp_path, benchmark):
    from tests.data.zeroshot.releases import write_genecis, write_sugarcrepe

    writer = {"genecis": write_genecis, "sugarcrepe": write_sugarcrepe}[benchmark]
    prepare_zeroshot(benchmark, writer(tmp_path / "release"), tmp_path / "tables")
    truth = {(r["qid"], r["did"]) for r in read_table(tmp_path / "tables", "qrels").to_pylist()}
    galleries: dict[str, list[str]] = {}
    for r in read_table(tmp_path / "tables", "galleries").to_pylist():
        galleries.setdefault(r["qid"], []).append(r["did"])
    # the retriever puts every true item last in its gallery; the teacher knows them
    lines, rows = [], []
    for q, dids in galleries.items():
        ranked = sorted(dids, key=lambda d: (q, d) in truth)
        lines += [f"{q} Q0 {d} {r} {1.0 - r / 10} sys" for r, d in enumerate(ranked, start=1)]
        rows += [(q, d, float((q, d) in truth)) for d in ranked]
    (tmp_path / "run.trec").write_text("\n".join(lines) + "\n")
    teacher = _write_teacher(tmp_path / "teacher", rows)
    record = evaluate_zeroshot(
        benchmark, tmp_path / "tables", tmp_path / "ev", run=tmp_path / "run.trec",
        rerank=ZeroshotRerank(scores=teacher, weight=100.0),
    )  # fmt: skip
    assert record["tasks"] and all(t["score"] == 1.0 for t in record["tasks"])
    assert all(t["score"] == 0.0 for t in record["rerank"]["retrieval_tasks"])
    fused = _order(tmp_path / "ev/run.trec")
    assert {q: sorted(d) for q, d in fused.items()} == {q: sorted(d) for q, d in galleries.items()}
