"""End to end on a CPU: `umarvel demo --size tiny` runs the whole recipe, links every stage to its
inputs, writes the ablation report, and a second run redoes nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts import fingerprint, read_manifest, read_table
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.demo import DEMO_STAGES, run_demo
from umarvel_cli.demo_report import CHANCE_ROW, ROWS

pytestmark = pytest.mark.slow

MODELS = ("init", *DEMO_STAGES, "hardneg", "distill")  # every retriever the demo evaluates
LABELS = (*MODELS, "umarvel_plus")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The CLI, as a newcomer runs it; the result record comes from the (up-to-date) library rerun."""
    out = tmp_path_factory.mktemp("demo")
    cli = CliRunner().invoke(app, ["demo", "--size", "tiny", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    created = {p.relative_to(out): read_manifest(p).created for p in _stages(out)}
    return out, cli.output, created


def _stages(out):
    return sorted(p.parent for p in out.rglob("manifest.json") if "embeddings" not in p.parts)


def test_every_step_runs_and_every_model_is_scored_on_both_pools(demo_run):
    out, printed, _ = demo_run
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test"
    for pool in ("local", "global"):
        rows = report["pools"][pool]["rows"]
        assert [r["label"] for r in rows] == list(LABELS if pool == "local" else MODELS)  # U-MARVEL+: local
        tasks = {t.stem for t in load_mbeir_spec().tasks}
        for row in rows:
            assert len(row["tasks"]) == 16, row["label"]
            assert row["average"] == pytest.approx(sum(row["tasks"].values()) / 16, abs=1e-12)
            assert 0.0 <= row["average"] <= 1.0
        chance = report["pools"][pool]["chance"]
        assert all(0.0 < c < 0.5 for c in chance["tasks"].values())
        assert len(tasks) == 16
    assert not [s for s in report["steps"] if s["status"] != "done"]
    assert all(s["wall_s"] >= 0 and s["cpu_s"] >= 0 for s in report["steps"])
    assert set(report["zeroshot"]) == {"init", "distill"}
    loss = read_manifest(out / "train" / "rerank").extra["final_loss"]  # whether the reranker learned
    assert [n for n in report["notes"] if n.startswith(f"The reranker's answer loss ended at {loss:.3f}")]
    teacher = read_manifest(out / "train" / "distill").extra["teacher_quality"]  # measured by distill
    assert [
        n
        for n in report["notes"]
        if n.startswith(f"Distillation teacher: over {teacher['lists']} teacher lists")
    ]
    md = (out / "report.md").read_text()
    assert "## Local pool" in printed  # the command prints the report
    for pool in ("Local", "Global"):
        assert f"## {pool} pool" in md
    for label in LABELS:
        tables = 1 if label == "umarvel_plus" else 2  # local (and global) ...
        assert md.count(f"| {ROWS[label]} |") == tables + (label in ("init", "distill")), label  # + zero-shot
    assert md.count(f"| {CHANCE_ROW} |") == 2
    for chart in ("progression.png", "per_task.png", "progression_global.png", "per_task_global.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG")


def test_every_stage_links_to_its_inputs(demo_run):
    """Each stage's manifest names the folder it was made from (by its fingerprint or its path)."""
    out, _, _ = demo_run

    def manifest(*parts):
        m = read_manifest(out.joinpath(*parts))
        assert m is not None, parts
        return m

    train, models = out / "train", out / "models"
    assert manifest("train", "caption").extra["init_model"] == str(train / "nli" / "model")
    assert manifest("train", "mbeir").extra["init_model"] == str(train / "caption" / "model")
    mine = manifest("mine")
    assert mine.inputs["model"] == fingerprint(train / "mbeir" / "model")
    assert mine.inputs["data"] == fingerprint(out / "tables")
    hardneg = manifest("train", "hardneg")
    assert hardneg.extra["init_model"] == str(train / "mbeir" / "model")
    assert hardneg.inputs["negatives"] == fingerprint(out / "mine")
    rerank = manifest("train", "rerank")
    assert rerank.extra["init_model"] == str(models / "reranker_init")
    assert rerank.inputs["negatives"] == fingerprint(out / "mine")
    reranker_init = manifest("models", "reranker_init")
    assert reranker_init.params == {"from": str(train / "hardneg" / "model"), "kind": "reranker"}
    teacher = manifest("teacher", "train_local")
    assert teacher.inputs["model"] == fingerprint(train / "rerank" / "model")
    assert teacher.params["sample"] == pytest.approx(0.1)
    distill = manifest("train", "distill")
    assert distill.extra["init_model"] == str(train / "hardneg" / "model")
    assert distill.inputs["teacher"] == fingerprint(out / "teacher" / "train_local")
    for split in ("val", "test"):  # U-MARVEL+'s lists: the final retriever's top-k
        lists = manifest("teacher", f"{split}_local")
        assert lists.params["split"] == split and lists.params["pool"] == "local"
        assert lists.inputs["retriever"] == fingerprint(train / "distill" / "model")
    for folder in ("eval", "eval_global"):
        for label in MODELS:
            ev = manifest(folder, label)
            assert ev.params["pool"] == ("local" if folder == "eval" else "global")
            assert ev.params["split"] == "test"
    plus = manifest("eval", "umarvel_plus")
    assert plus.params["tune_weight_on"] == "val"
    assert plus.inputs["model"] == fingerprint(train / "distill" / "model")
    local_plus = json.loads((out / "eval" / "umarvel_plus" / "metrics.json").read_text())
    assert local_plus["rerank"]["weight_source"] == "tuned on val"
    assert local_plus["rerank"]["scores"] == str(out / "teacher" / "test_local")


def test_scores_are_the_evaluations_and_follow_from_the_written_runs(demo_run):
    """Each score in report.json is its metrics.json headline, and recomputing every task's UniIR hit
    rate from its run.trec and the qrels gives the same numbers."""
    out, _, _ = demo_run
    report = json.loads((out / "report.json").read_text())
    assert json.loads((out / "demo_scores.json").read_text()) == {
        r["label"]: r["average"] for r in report["pools"]["local"]["rows"]
    }
    tasks = {(t.dataset_id, t.task_id): t for t in load_mbeir_spec().tasks}
    queries = read_table(out / "tables", "queries", columns=["qid", "split", "dataset_id", "task_id"])
    task_of = {
        q["qid"]: tasks[q["dataset_id"], q["task_id"]] for q in queries.to_pylist() if q["split"] == "test"
    }
    positives: dict[str, set[str]] = {}
    for r in read_table(out / "tables", "qrels").to_pylist():
        if r["split"] == "test" and r["relevance"] > 0:
            positives.setdefault(r["qid"], set()).add(r["did"])
    for pool, folder in (("local", "eval"), ("global", "eval_global")):
        for row in report["pools"][pool]["rows"]:
            metrics = json.loads((out / folder / row["label"] / "metrics.json").read_text())
            assert metrics["headline"]["mean"] == row["average"]
            ranked: dict[str, list[str]] = {}
            for line in (out / folder / row["label"] / "run.trec").read_text().splitlines():
                qid, _, did, *_ = line.split()
                ranked.setdefault(qid, []).append(did)  # written best first per query
            hits: dict[str, list[bool]] = {}
            for qid, task in task_of.items():
                top = set(ranked.get(qid, [])[: task.metric_k])
                hits.setdefault(task.stem, []).append(bool(top & positives.get(qid, set())))
            recomputed = {stem: sum(h) / len(h) for stem, h in hits.items()}
            assert {t["task"]: t["score"] for t in metrics["tasks"]} == pytest.approx(recomputed, abs=1e-12)


def test_the_final_model_beats_the_untrained_one(demo_run):
    out, _, _ = demo_run
    rows = {
        r["label"]: r["average"]
        for r in json.loads((out / "report.json").read_text())["pools"]["local"]["rows"]
    }
    assert rows["distill"] >= rows["init"] + 0.05


def test_second_run_is_up_to_date(demo_run):
    out, _, created = demo_run
    first = json.loads((out / "report.json").read_text())
    again = run_demo(out, size="tiny")
    assert again.scores == {r["label"]: r["average"] for r in first["pools"]["local"]["rows"]}
    assert {p.relative_to(out): read_manifest(p).created for p in _stages(out)} == created
