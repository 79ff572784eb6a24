"""End to end on a CPU: the whole demo pipeline on tiny data, then a second run that redoes nothing."""

from __future__ import annotations

import json

import pytest

from umarvel_cli.artifacts import read_manifest, read_table
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.demo import DEMO_STAGES, run_demo

pytestmark = pytest.mark.slow

FAST = ["max_steps=3", "batch_size=8", "save_every=2"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, size="tiny", train_overrides=FAST)


def test_every_step_runs_and_every_model_is_scored(demo_run):
    out, result = demo_run
    done = {name for name, status in result.steps if status == "done"}
    for step in [
        "prepare demo",
        "prepare mbeir",
        "prepare pairs (nli)",
        "prepare pairs (caption)",
        "eval init (zero-shot)",
    ]:
        assert step in done
    assert "train --stage progressive" in done
    assert set(result.scores) == {"init", *DEMO_STAGES}
    report = (out / "report.md").read_text()
    assert "| mine | built; not run by the demo yet (issue 18) |" in report
    assert (out / "progression.png").read_bytes().startswith(b"\x89PNG")


def test_scores_are_the_reports_and_follow_from_the_written_runs(demo_run):
    """Each model's score is its metrics.json headline, printed in report.md and demo_scores.json, and
    recomputing every task's UniIR hit rate from its run.trec and the qrels gives the same numbers."""
    out, result = demo_run
    assert json.loads((out / "demo_scores.json").read_text()) == result.scores
    report = (out / "report.md").read_text()
    tasks = {(t.dataset_id, t.task_id): t for t in load_mbeir_spec().tasks}
    queries = read_table(out / "tables", "queries", columns=["qid", "split", "dataset_id", "task_id"])
    task_of = {
        q["qid"]: tasks[q["dataset_id"], q["task_id"]] for q in queries.to_pylist() if q["split"] == "test"
    }
    positives: dict[str, set[str]] = {}
    for r in read_table(out / "tables", "qrels").to_pylist():
        if r["split"] == "test" and r["relevance"] > 0:
            positives.setdefault(r["qid"], set()).add(r["did"])
    for label, score in result.scores.items():
        assert f"| {label} | {score:.4f} |" in report
        metrics = json.loads((out / "eval" / label / "metrics.json").read_text())
        assert metrics["headline"]["mean"] == score
        ranked: dict[str, list[str]] = {}
        for line in (out / "eval" / label / "run.trec").read_text().splitlines():
            qid, _, did, *_ = line.split()
            ranked.setdefault(qid, []).append(did)  # written best first per query
        hits: dict[str, list[bool]] = {}
        for qid, task in task_of.items():
            top = set(ranked.get(qid, [])[: task.metric_k])
            hits.setdefault(task.stem, []).append(bool(top & positives.get(qid, set())))
        recomputed = {stem: sum(h) / len(h) for stem, h in hits.items()}
        assert {t["task"]: t["score"] for t in metrics["tasks"]} == pytest.approx(recomputed, abs=1e-12)
        assert score == pytest.approx(sum(recomputed.values()) / len(recomputed), abs=1e-12)


def test_stages_chain_from_the_previous_merged_model(demo_run):
    out, _ = demo_run
    caption = read_manifest(out / "train" / "caption")
    mbeir = read_manifest(out / "train" / "mbeir")
    assert caption is not None and mbeir is not None
    assert caption.extra["init_model"] == str(out / "train" / "nli" / "model")
    assert mbeir.extra["init_model"] == str(out / "train" / "caption" / "model")
    # learnable temperature from the mbeir stage on, kept in the merged model folder
    saved = json.loads((out / "train" / "mbeir" / "model" / "umarvel.json").read_text())
    assert "temperature" in json.dumps(saved)


def test_second_run_is_up_to_date(demo_run):
    out, first = demo_run
    before = {p: read_manifest(p).created for p in [out / "tables", out / "train" / "mbeir"]}
    again = run_demo(out, size="tiny", train_overrides=FAST)
    assert again.scores == pytest.approx(first.scores)
    assert {p: read_manifest(p).created for p in before} == before
