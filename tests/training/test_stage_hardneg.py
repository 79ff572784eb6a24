"""The hardneg stage on the tiny demo: mined negatives in, model + manifest naming them out, resume, up to date."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.mining import make_settings, run_mine
from umarvel_cli.training.stages import StageRequest, run_stage

K = 3  # the demo_mined fixture keeps 3 negatives per query
SETS = [f"hard_negatives={K}", "batch_size=4", "max_steps=4", "save_every=2", "lr=1e-3"]


def _req(model, out, data, negatives, sets=()):
    return StageRequest(
        stage="hardneg", model=model, out=out, data=data, profile="demo",
        sets=[*SETS, *sets], device="cpu", negatives=negatives,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(demo_mined, demo_tables, tmp_path_factory):
    model, mined = demo_mined
    out = tmp_path_factory.mktemp("hardneg") / "run"
    return run_stage(_req(model, out, demo_tables, mined)), out


def test_trains_from_the_mined_rows_and_names_them_in_the_manifest(trained, demo_mined, demo_tables):
    (model, mined), (result, out) = demo_mined, trained
    assert result.status == "fresh"
    assert (out / "model" / "model.safetensors").is_file() and not (out / "checkpoints").exists()
    manifest = read_manifest(out)
    train = read_table(demo_tables, "queries", ["split"]).to_pylist()
    assert manifest.stage == "train-hardneg"
    assert manifest.counts == {"examples": sum(q["split"] == "train" for q in train), "steps": 4}
    assert manifest.inputs["negatives"] == fingerprint(mined)
    assert manifest.inputs["model"] == fingerprint(model)
    assert manifest.extra["negatives"] == str(mined.resolve())
    assert manifest.extra["negatives_model"] == read_manifest(mined).extra["model"] == str(model.resolve())
    assert manifest.params["config"]["hard_negatives"] == K
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all("hard_margin" in row and 0 <= row["hard_beaten"] <= 1 for row in log)
    before, after = load_file(model / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_rerun_is_up_to_date_and_a_new_mining_redoes_it(trained, demo_mined, demo_tables, tmp_path):
    (model, mined), (_, out) = demo_mined, trained
    created = read_manifest(out).created
    assert run_stage(_req(model, out, demo_tables, mined)).status == "up_to_date"
    assert read_manifest(out).created == created
    # negatives mined again with other settings are another input: the stage is redone
    remined = tmp_path / "remined"
    settings = make_settings(topk=10, rank_range="1-10", num_negatives=K)
    run_mine(model, demo_tables, remined, settings, embeddings=mined.parent / "emb")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert run_stage(_req(model, copy, demo_tables, remined)).status == "redo"
    assert read_manifest(copy).inputs["negatives"] == fingerprint(remined) != fingerprint(mined)


def test_killed_hardneg_stage_resumes_to_the_same_model(trained, demo_mined, demo_tables, tmp_path):
    (model, mined), (_, ref) = demo_mined, trained

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(_req(model, tmp_path / "b", demo_tables, mined), on_step=crash)
    assert read_manifest(tmp_path / "b") is None
    again = run_stage(_req(model, tmp_path / "b", demo_tables, mined))
    assert again.status == "resume" and again.extra["resumed_from_step"] == 2
    a = load_file(ref / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    assert again.extra["temperature"] == pytest.approx(read_manifest(ref).extra["temperature"], abs=1e-7)
