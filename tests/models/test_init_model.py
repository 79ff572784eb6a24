"""`umarvel init-model`: a tiny model folder every command can load; one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.models.inputs.tokenizer import QWEN_SPECIALS
from umarvel_cli.models.umarvel_config import UmarvelConfig


def test_init_model_writes_a_loadable_folder(tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(
        app, ["init-model", "--backbone", "tiny-qwen3-vl", "--out", str(out), "--seed", "3"]
    )
    assert res.exit_code == 0, res.output
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "preprocessor_config.json",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3_vl"
    cfg = UmarvelConfig.load(out)
    assert cfg.family == "qwen3-vl" and cfg.pooling == "mean" and cfg.attention == "bidirectional"
    assert cfg.compression_prompt is None and cfg.position_ids == "mrope"
    vocab = json.loads((out / "tokenizer.json").read_text())
    added = {t["content"] for t in vocab["added_tokens"]}
    assert set(QWEN_SPECIALS) | {"<instruction_start>", "<instruction_end>", "<emb>"} <= added


def test_init_model_is_deterministic_per_seed(tmp_path):
    from umarvel_cli.models.tiny import init_tiny_model

    a = init_tiny_model("tiny-qwen2-vl", tmp_path / "a", seed=1)
    b = init_tiny_model("tiny-qwen2-vl", tmp_path / "b", seed=1)
    c = init_tiny_model("tiny-qwen2-vl", tmp_path / "c", seed=2)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (c / "tokenizer.json").read_text()


def test_unknown_backbone_is_a_one_line_error(tmp_path):
    res = CliRunner().invoke(app, ["init-model", "--backbone", "qwen2-vl", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "'qwen2-vl' is not one of 'tiny-qwen2-vl', 'tiny-qwen2.5-vl', 'tiny-qwen3-vl'" in res.output


def test_init_model_is_a_stage_with_the_demo_model_options(tmp_path):
    from umarvel_cli.artifacts.manifest import read_manifest
    from umarvel_cli.demo import DEMO_POOL_TOKENS

    out = tmp_path / "m"
    args = ["init-model", "--backbone", "tiny-qwen2-vl", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and res.stdout.startswith("wrote "), res.output
    manifest = read_manifest(out)
    assert manifest.stage == "init-model"
    assert manifest.params == {"backbone": "tiny-qwen2-vl", "seed": 0, "pool_tokens": DEMO_POOL_TOKENS}
    assert "model.safetensors" in manifest.extra["files"]
    assert UmarvelConfig.load(out).pool_tokens == DEMO_POOL_TOKENS == "content"
    weights = (out / "model.safetensors").stat().st_mtime_ns
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and res.stdout.startswith("up to date: ") and "is up to date" in res.stderr
    assert (out / "model.safetensors").stat().st_mtime_ns == weights
    res = CliRunner().invoke(app, [*args, "--pool-tokens", "all"])  # other options: rewritten
    assert res.exit_code == 0 and UmarvelConfig.load(out).pool_tokens == "all"


def test_init_model_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = CliRunner().invoke(app, ["init-model", "--backbone", "tiny-qwen2-vl", "--out", str(out)])
    assert (
        res.exit_code == 2
        and "is not an umarvel output" in res.stderr
        and "refusing to overwrite it" in res.stderr
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_settings_override_umarvel_json_fields_and_are_checked(tmp_path):
    """`init_model(settings=...)` (the demo's ablations): the fields land in umarvel.json and the
    manifest; an unknown field or value is a one-line error before anything is written."""
    import pytest

    from umarvel_cli.errors import UmarvelError
    from umarvel_cli.models.init_stage import init_model

    manifest, written = init_model("tiny-qwen2-vl", tmp_path / "m", settings={"attention": "causal"})
    assert written and manifest.params["settings"] == {"attention": "causal"}
    assert UmarvelConfig.load(tmp_path / "m").attention == "causal"
    with pytest.raises(UmarvelError, match=r"unknown umarvel.json fields \['atention'\]"):
        init_model("tiny-qwen2-vl", tmp_path / "x", settings={"atention": "causal"})
    assert not (tmp_path / "x").exists()
