"""Stages on the tiny Qwen2-VL with LoRA: outputs, up to date, resume after a kill, the progressive chain."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.models.folder import resolve_model_dir
from umarvel_cli.training.progressive import run_progressive, train_progressive
from umarvel_cli.training.stages import ADAPTER_DIR, StageRequest, run_stage

# LoRA on (the demo profile fine-tunes every weight) so these tests cover the adapter path
FAST = ["batch_size=8", "max_steps=4", "save_every=2", "lora=true", "lora_rank=4", "lora_alpha=8"]


def _req(stage, model, out, demo_pairs, demo_tables, sets=()):
    return StageRequest(
        stage=stage,
        model=model,
        out=out,
        data=demo_tables,
        pairs=demo_pairs.get(stage),
        profile="demo",
        sets=[*FAST, *sets],
        device="cpu",
    )


def test_nli_stage_writes_merged_model_adapter_and_manifest(tiny_model, demo_pairs, demo_tables, tmp_path):
    out = tmp_path / "nli"
    result = run_stage(_req("nli", tiny_model, out, demo_pairs, demo_tables, ["gradient_checkpointing=true"]))
    assert result.status == "fresh"
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "umarvel.json").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "checkpoints").exists()
    manifest = read_manifest(out)
    assert manifest.stage == "train-nli" and manifest.counts == {"examples": 64, "steps": 4}
    assert manifest.inputs["model"] == fingerprint(tiny_model)
    assert manifest.params["config"]["lora_rank"] == 4
    assert "lora_rank: 4" in (out / "config.yaml").read_text()
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4
    # merged weights differ from the init (LoRA folded in), and keep the tiny model's keys
    before, after = (
        load_file(tiny_model / "model.safetensors"),
        load_file(out / "model" / "model.safetensors"),
    )
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((out / "model" / "umarvel.json").read_text())["temperature"] == pytest.approx(0.05)
    # the same command again is up to date; a changed parameter redoes it
    again = _req("nli", tiny_model, out, demo_pairs, demo_tables, ["gradient_checkpointing=true"])
    assert run_stage(again).status == "up_to_date"
    assert resolve_model_dir(out) == out / "model"


def test_demo_profile_fine_tunes_every_weight_without_adapter(tiny_model, demo_pairs, demo_tables, tmp_path):
    out = tmp_path / "caption"
    sets = ["batch_size=8", "max_steps=2", "save_every=2"]
    req = StageRequest(
        stage="caption", model=tiny_model, out=out, data=demo_tables, pairs=demo_pairs["caption"],
        profile="demo", sets=sets, device="cpu",
    )  # fmt: skip
    run_stage(req)
    assert read_manifest(out).params["config"]["lora"] is False
    assert not (out / ADAPTER_DIR).exists()
    before, after = (
        load_file(tiny_model / "model.safetensors"),
        load_file(out / "model" / "model.safetensors"),
    )
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # language model and vision tower both moved (LoRA would leave norms untouched)
    assert any("visual" in k for k in changed) and any("norm" in k for k in changed)


def test_killed_stage_resumes_to_the_same_model(tiny_model, demo_pairs, demo_tables, tmp_path):
    sets = ["learn_temperature=true", "lr=0.01"]  # τ learns too, so it must survive the resume
    ref = run_stage(_req("nli", tiny_model, tmp_path / "a", demo_pairs, demo_tables, sets))

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(_req("nli", tiny_model, tmp_path / "b", demo_pairs, demo_tables, sets), on_step=crash)
    assert (tmp_path / "b" / "checkpoints" / "step-00000002").is_dir()
    assert read_manifest(tmp_path / "b") is None
    again = run_stage(_req("nli", tiny_model, tmp_path / "b", demo_pairs, demo_tables, sets))
    assert again.status == "resume" and again.extra["resumed_from_step"] == 2
    a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    assert again.extra["temperature"] == pytest.approx(ref.extra["temperature"], abs=1e-7)
    assert ref.extra["temperature"] != pytest.approx(0.05)


def test_progressive_chain_records_each_init_and_resumes(tiny_model, demo_pairs, demo_tables, tmp_path):
    sets = ["max_steps=2", "mbeir.batching=task"]  # task-homogeneous batches in the mbeir stage
    req = _req("progressive", tiny_model, tmp_path / "run", demo_pairs, demo_tables, sets)
    req.nli_pairs, req.caption_pairs = demo_pairs["nli"], demo_pairs["caption"]
    results = run_progressive(req)
    assert [r.stage for r in results] == ["nli", "caption", "mbeir"]
    assert all(r.status == "fresh" for r in results)
    nli, cap, mb = (read_manifest(tmp_path / "run" / s) for s in ("nli", "caption", "mbeir"))
    assert cap.inputs["model"] == fingerprint(tmp_path / "run" / "nli")
    assert mb.inputs["model"] == fingerprint(tmp_path / "run" / "caption")
    assert cap.extra["init_model"] == str(tmp_path / "run" / "nli" / "model")
    assert cap.params["config"]["bidirectional"] and not nli.params["config"]["bidirectional"]
    assert mb.params["config"]["learn_temperature"] and mb.params["config"]["instruction"] == "random"
    assert mb.params["config"]["batching"] == "task" and nli.params["config"]["batching"] == "mixed"
    # mbeir learned its temperature and stored it with the merged model
    saved = json.loads((tmp_path / "run" / "mbeir" / "model" / "umarvel.json").read_text())
    assert saved["temperature"] == pytest.approx(mb.extra["temperature"], rel=1e-5)
    # the chain again (through the Python entry point `umarvel demo` uses): every stage up to date
    models = train_progressive(demo_tables, demo_pairs["nli"], demo_pairs["caption"], tiny_model,
                               tmp_path / "run", "demo", req.sets, device="cpu")  # fmt: skip
    assert models == {s: tmp_path / "run" / s / "model" for s in ("nli", "caption", "mbeir")}
    assert read_manifest(tmp_path / "run" / "mbeir").created == mb.created  # not redone
    # the chain's folder names its last stage's model wherever a model folder is taken
    assert resolve_model_dir(tmp_path / "run") == tmp_path / "run" / "mbeir" / "model"
