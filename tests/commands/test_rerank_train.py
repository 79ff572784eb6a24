"""`umarvel rerank train` through the CLI: LoRA by default (rank and alpha from the flags), the released
prompt as an option, a folder `rerank score` reads, up to date on rerun, dry run; bad input as one line
with exit status 2 and nothing written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.models.reranker import RELEASED_PROMPT, Reranker
from umarvel_cli.models.tiny import init_tiny_model

runner = CliRunner()
FAST = ["--set", "batch_size=4", "--set", "max_steps=2", "--set", "lora=true"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return init_tiny_model("tiny-qwen2-vl", tmp_path_factory.mktemp("rr") / "base", seed=1, kind="reranker")


def _argv(model, data, negatives, out, *extra):
    args = ["rerank", "train", "--model", model, "--data", data, "--out", out, "--profile", "demo",
            "--device", "cpu", *FAST, *extra]  # fmt: skip
    if negatives is not None:
        args += ["--negatives", negatives]
    return [str(a) for a in args]


def test_lora_reranker_is_saved_scored_and_up_to_date(base, demo_mined, demo_tables, tmp_path):
    retriever, mined = demo_mined
    out = tmp_path / "rr"
    argv = _argv(base, demo_tables, mined, out, "--lora-rank", 4, "--lora-alpha", 8, "--released-prompt")
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert first.stdout.split("\t")[:2] == ["rerank", "fresh"]
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8
    manifest = read_manifest(out)
    assert manifest.params["config"]["lora"] and manifest.params["config"]["rerank_prompt"] == "released"
    assert manifest.extra["negatives"] == str(mined.resolve()) and manifest.extra["base_model"] == str(base)
    rr = Reranker.from_pretrained(out / "model", device="cpu")
    assert rr.preamble == RELEASED_PROMPT and not hasattr(rr.model, "peft_config")
    scored = runner.invoke(app, ["rerank", "score", "--model", str(out / "model"), "--data", str(demo_tables),
                                 "--retriever", str(retriever), "--split", "val", "--topk", "2",
                                 "--sample-fraction", "0.5", "--out", str(tmp_path / "t"), "--device", "cpu"])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    counts = read_manifest(tmp_path / "t").counts
    val = read_table(demo_tables, "queries", ["split"]).column("split").to_pylist().count("val")
    assert counts["pairs"] > 0 and 0 < counts["queries"] < val  # `--sample-fraction 0.5` scored a share
    again = runner.invoke(app, argv)
    assert again.exit_code == 0 and again.stdout.split("\t")[:2] == ["rerank", "up_to_date"]


def test_flags_default_to_lora_r128_alpha256_and_the_clean_prompt(base, demo_mined, demo_tables, tmp_path):
    out = tmp_path / "d"
    result = runner.invoke(app, _argv(base, demo_tables, demo_mined[1], out, "--dry-run"))
    assert result.exit_code == 0, result.output
    (desc,) = json.loads(result.stdout)
    assert desc["stage"] == "rerank" and desc["objective"] == "rerank" and desc["problems"] == []
    cfg = desc["config"]
    assert (cfg["lora_rank"], cfg["lora_alpha"], cfg["rerank_prompt"]) == (128, 256, "clean")
    assert desc["data"]["examples"] > 0 and desc["total_steps"] == 2 and not out.exists()


@pytest.mark.parametrize("case", ["embedding_model", "no_negatives", "other_split"])
def test_bad_input_is_one_line_exit_2_nothing_written(case, base, demo_mined, demo_tables, tmp_path):
    retriever, mined = demo_mined
    out = tmp_path / "d"
    if case == "embedding_model":
        argv, text = _argv(retriever, demo_tables, mined, out), "this is an embedding model, not a reranker"
    elif case == "no_negatives":
        argv, text = _argv(base, demo_tables, None, out), "--negatives"
    else:
        argv, text = _argv(base, demo_tables, mined, out, "--split", "val"), "mined on split 'train'"
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.output
    assert not out.exists()
