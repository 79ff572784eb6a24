"""The distill stage on the tiny demo tables with a tiny model and a small hand-built teacher table:
outputs and manifest, up to date, resume after a kill, the resolution cap, and bad teacher input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from umarvel_cli.artifacts import Manifest, read_table, write_manifest
from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.dispatch import train
from umarvel_cli.training.distill_data import DistillSet
from umarvel_cli.training.stages import StageRequest, run_stage

from .distill_fixtures import teacher_rows, write_teacher

FAST = ["batch_size=4", "max_steps=4", "save_every=2", "distill_topk=4", "loss_impl=plain"]


@pytest.fixture(scope="module")
def teacher(demo_tables, tmp_path_factory):
    return write_teacher(tmp_path_factory.mktemp("teacher"), demo_tables, teacher_rows(demo_tables))


def _req(model, out, data, teacher, sets=()):
    return StageRequest("distill", model, out, data, profile="demo", sets=[*FAST, *sets], device="cpu",
                        teacher=teacher)  # fmt: skip


def test_distill_set_holds_each_teacher_query_with_its_fused_top_k(demo_tables, teacher):
    from umarvel_cli.training.config import resolve_config

    cfg = resolve_config("distill", "demo", sets=FAST)
    ds = DistillSet(demo_tables, teacher, cfg)
    rows = read_table(teacher, "teacher").to_pylist()
    assert len(ds) == 12 and ds.describe()["topk"] == 4
    ex = ds.example(0, 0)
    mine = [r for r in rows if r["qid"] == ex.query.id]
    assert ex.query.instruction  # the mbeir stage's query, with an instruction
    # teacher scores are F/2, F = cos + w*P(Yes), best first; the demo's tasks have w = 1 unless mscoco 0/3
    w = {"mscoco_task0": 0.5, "mscoco_task3": 0.1}
    from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
    from umarvel_cli.evaluation.prepared import task_stem

    q = next(r for r in read_table(demo_tables, "queries").to_pylist() if r["qid"] == ex.query.id)
    wt = w.get(task_stem(load_mbeir_spec(), q["dataset_id"], q["task_id"]), 1.0)
    fused = sorted(((r["retrieval_score"] + wt * r["rerank_score"], r["did"]) for r in mine), reverse=True)[
        :4
    ]
    assert [c.id for c in ex.negatives] == [d for _, d in fused]
    np.testing.assert_allclose(ex.teacher_scores, [f / 2 for f, _ in fused], rtol=1e-5)


def test_distill_stage_writes_model_manifest_and_is_up_to_date(tiny_model, demo_tables, teacher, tmp_path):
    out = tmp_path / "d"
    result = run_stage(_req(tiny_model, out, demo_tables, teacher))
    assert result.status == "fresh"
    assert (out / "model" / "model.safetensors").is_file() and not (out / "checkpoints").exists()
    manifest = read_manifest(out)
    assert manifest.stage == "train-distill" and manifest.counts == {"examples": 12, "steps": 4}
    assert manifest.inputs["teacher"] == fingerprint(teacher)
    assert manifest.inputs["model"] == fingerprint(tiny_model)
    assert manifest.extra["teacher"] == str(teacher.resolve())
    assert manifest.extra["init_model"] == str(tiny_model)
    assert manifest.params["config"]["distill_topk"] == 4
    assert manifest.params["config"]["fusion_weights"] == {
        "default": 1.0,
        "mscoco_task0": 0.5,
        "mscoco_task3": 0.1,
    }
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all(
        np.isfinite(r["loss"]) and r["kl"] >= 0 and 0 <= r["top1_agree"] <= 1 for r in log
    )
    assert all(r["loss"] == pytest.approx(r["kl"], rel=1e-6) for r in log)  # KL only by default
    before, after = (
        load_file(tiny_model / "model.safetensors"),
        load_file(out / "model" / "model.safetensors"),
    )
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # the same request again is up to date; a new teacher table redoes it
    assert run_stage(_req(tiny_model, out, demo_tables, teacher)).status == "up_to_date"
    newer = write_teacher(tmp_path / "t2", demo_tables, teacher_rows(demo_tables, seed=1))
    assert run_stage(_req(tiny_model, out, demo_tables, newer)).status == "redo"


def test_a_teacher_worse_than_the_retriever_is_warned_about_and_recorded(
    tiny_model, demo_tables, tmp_path, capsys
):
    rows = teacher_rows(demo_tables)
    for r in rows:  # the cosine puts each positive first, P(Yes) puts it last
        r["retrieval_score"], r["rerank_score"] = (0.9, 0.0) if r["rank"] == 1 else (0.5, 1.0)
    bad = write_teacher(tmp_path / "bad", demo_tables, rows)
    run_stage(_req(tiny_model, tmp_path / "d", demo_tables, bad))
    quality = read_manifest(tmp_path / "d").extra["teacher_quality"]
    assert quality == {"lists": 12, "rerank_auc": 0.0, "retrieval_auc": 1.0, "fused_auc": 0.0}
    err = capsys.readouterr().err
    assert "the teacher orders its lists worse than the retriever alone" in err and "12 teacher lists" in err


def test_killed_distill_resumes_to_the_same_model(tiny_model, demo_tables, teacher, tmp_path):
    sets = ["lr=0.01", "distill_infonce_weight=0.5"]  # the InfoNCE option trains too
    run_stage(_req(tiny_model, tmp_path / "a", demo_tables, teacher, sets))

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(_req(tiny_model, tmp_path / "b", demo_tables, teacher, sets), on_step=crash)
    assert read_manifest(tmp_path / "b") is None
    again = run_stage(_req(tiny_model, tmp_path / "b", demo_tables, teacher, sets))
    assert again.status == "resume" and again.extra["resumed_from_step"] == 2
    a, b = (
        load_file(tmp_path / "a" / "model" / "model.safetensors"),
        load_file(tmp_path / "b" / "model" / "model.safetensors"),
    )
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert all(r["loss"] == pytest.approx(r["kl"] + 0.5 * r["infonce"], rel=1e-5) for r in log)


def test_resolution_cap_applies_while_training_and_the_model_keeps_its_own(
    tiny_model, demo_tables, teacher, tmp_path
):
    from umarvel_cli.models.umarvel_config import UmarvelConfig
    from umarvel_cli.training.config import resolve_config
    from umarvel_cli.training.stages import load_trainable_model

    own = UmarvelConfig.load(tiny_model)
    cap = own.min_pixels * 2
    cfg = resolve_config("distill", "demo", sets=[*FAST, f"max_image_pixels={cap}"])
    emb = load_trainable_model(tiny_model, cfg, torch.device("cpu"))
    assert emb.config.max_pixels == cap and emb.formatter.config.max_pixels == cap
    from tests.models.tiny_models import random_image
    from umarvel_cli.data.records import Record
    from umarvel_cli.models.embedder import Embedder

    image = [Record(id="x", image=random_image(1, 200, 160))]
    patches = lambda e: int(e.prepare(image, "candidate")["image_grid_thw"].prod())  # noqa: E731
    assert patches(emb) * 4 <= patches(Embedder.from_pretrained(tiny_model, device="cpu"))
    result = run_stage(
        _req(tiny_model, tmp_path / "d", demo_tables, teacher, [f"max_image_pixels={cap}", "max_steps=1"])
    )
    assert result.extra["train_max_pixels"] == cap
    assert UmarvelConfig.load(tmp_path / "d" / "model").max_pixels == own.max_pixels


def test_dry_run_describes_the_stage(tiny_model, demo_tables, teacher, tmp_path):
    out = tmp_path / "d"
    result = train(_req(tiny_model, out, demo_tables, teacher), dry_run=True)
    (desc,) = result["stages"]
    assert desc["objective"] == "distill" and desc["problems"] == []
    assert desc["data"]["examples"] == 12 and desc["total_steps"] == 4
    assert not out.exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown_qid", "qid(s) of the teacher scores are not in the train queries"),
        ("unknown_did", "did(s) of the teacher scores are not in the train queries of --data"),
        ("nan", "non-finite rerank_score"),
        ("inf", "non-finite retrieval_score"),
        ("interrupted", "interrupted teacher table"),
        ("other_tables", "teacher scores were made from other tables"),
        ("missing", "stage distill needs --teacher"),
    ],
)
def test_bad_teacher_input_is_one_error_and_nothing_written(case, message, tiny_model, demo_tables, tmp_path):
    rows = teacher_rows(demo_tables, n_queries=4)
    if case == "unknown_qid":
        rows[0]["qid"] = "nope:1"
    if case == "unknown_did":
        rows[1]["did"] = "nope:2"
    if case == "nan":
        rows[2]["rerank_score"] = float("nan")
    if case == "inf":
        rows[3]["retrieval_score"] = float("inf")
    folder = write_teacher(tmp_path / "t", demo_tables, rows, finished=case != "interrupted")
    if case == "other_tables":
        write_manifest(folder, Manifest(stage="rerank-score", params={}, inputs={"data": "sha256:other"}))
    out = tmp_path / "out"
    with pytest.raises(UmarvelError, match=re.escape(message)):
        run_stage(_req(tiny_model, out, demo_tables, None if case == "missing" else folder))
    assert not out.exists()
