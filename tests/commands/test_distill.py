"""`umarvel distill` through the CLI: a small run, up to date on rerun, and bad teacher input as one
line with exit status 2 and nothing written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.training.distill_fixtures import teacher_rows, write_teacher
from umarvel_cli.app import app
from umarvel_cli.artifacts.manifest import fingerprint, read_manifest

runner = CliRunner()
FAST = [
    "--set",
    "batch_size=4",
    "--set",
    "max_steps=2",
    "--set",
    "distill_topk=3",
    "--set",
    "loss_impl=plain",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.models.tiny_models import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")


def _argv(model, data, teacher, out, *extra):
    return ["distill", "--model", str(model), "--data", str(data), "--teacher", str(teacher), "--out", str(out),
            "--profile", "demo", "--device", "cpu", *FAST, *extra]  # fmt: skip


def test_distill_trains_then_is_up_to_date(tiny_model, demo_tables, tmp_path):
    teacher = write_teacher(tmp_path / "teacher", demo_tables, teacher_rows(demo_tables, n_queries=8))
    out = tmp_path / "d"
    first = runner.invoke(app, _argv(tiny_model, demo_tables, teacher, out))
    assert first.exit_code == 0, first.output
    assert first.stdout.split("\t")[:2] == ["distill", "fresh"]
    manifest = read_manifest(out)
    assert manifest.stage == "train-distill" and manifest.counts["steps"] == 2
    assert manifest.extra["teacher"] == str(teacher.resolve()) and (out / "model" / "umarvel.json").is_file()
    again = runner.invoke(app, _argv(tiny_model, demo_tables, teacher, out))
    assert again.exit_code == 0 and again.stdout.split("\t")[:2] == ["distill", "up_to_date"]


def test_dry_run_prints_the_stage_and_writes_nothing(tiny_model, demo_tables, tmp_path):
    teacher = write_teacher(tmp_path / "teacher", demo_tables, teacher_rows(demo_tables, n_queries=8))
    result = runner.invoke(app, _argv(tiny_model, demo_tables, teacher, tmp_path / "d", "--dry-run"))
    assert result.exit_code == 0, result.output
    (desc,) = json.loads(result.stdout)
    assert desc["stage"] == "distill" and desc["config"]["max_image_pixels"] == 50176
    assert desc["data"]["examples"] == 8 and not (tmp_path / "d").exists()


@pytest.mark.parametrize("case", ["unknown_id", "nan", "interrupted"])
def test_bad_teacher_is_one_line_exit_2_nothing_written(case, tiny_model, demo_tables, tmp_path):
    rows = teacher_rows(demo_tables, n_queries=3)
    if case == "unknown_id":
        rows[0]["did"] = "nope:1"
    if case == "nan":
        rows[0]["rerank_score"] = float("nan")
    teacher = write_teacher(tmp_path / "teacher", demo_tables, rows, finished=case != "interrupted")
    out = tmp_path / "d"
    result = runner.invoke(app, _argv(tiny_model, demo_tables, teacher, out))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    expected = {
        "unknown_id": "are not in the train queries",
        "nan": "non-finite",
        "interrupted": "interrupted",
    }
    assert expected[case] in lines[0]
    assert not out.exists()


def test_distill_reads_a_real_rerank_score_output(tiny_model, demo_tables, tmp_path):
    """The teacher written by `rerank score` (over a run of train queries) is what `distill` reads."""
    from tests.reranking.fixtures import write_run
    from umarvel_cli.models.tiny import init_tiny_model
    from umarvel_cli.reranking.score_stage import rerank_score

    rows = teacher_rows(demo_tables, n_queries=4)
    run = write_run(tmp_path / "run", [{"qid": r["qid"], "did": r["did"], "rank": r["rank"],
                                        "score": r["retrieval_score"]} for r in rows])  # fmt: skip
    reranker = init_tiny_model("tiny-qwen2-vl", tmp_path / "rr", seed=2, kind="reranker")
    rerank_score(reranker, demo_tables, tmp_path / "teacher", run=run, topk=5, device="cpu")
    out = tmp_path / "d"
    result = runner.invoke(app, _argv(tiny_model, demo_tables, tmp_path / "teacher", out))
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.counts == {"examples": 4, "steps": 2}
    assert manifest.inputs["teacher"] == fingerprint(tmp_path / "teacher")
