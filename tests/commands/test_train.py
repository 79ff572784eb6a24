"""`umarvel train` through the CLI: dry run, and every bad input as one line with exit status 2."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts import TABLES, ShardWriter, read_table

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.models.tiny_models import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")


@pytest.fixture(scope="module")
def nli_pairs(demo_root, tmp_path_factory):
    from umarvel_cli.data.pairs import prepare_pairs

    out = tmp_path_factory.mktemp("cli_pairs") / "nli"
    prepare_pairs(demo_root / "pairs" / "nli.csv", out, "nli")
    return out


@pytest.fixture(scope="module")
def caption_pairs(demo_root, tmp_path_factory):
    from umarvel_cli.data.pairs import prepare_pairs

    out = tmp_path_factory.mktemp("cli_pairs") / "caption"
    prepare_pairs(demo_root / "pairs" / "captions.jsonl", out, "caption")
    return out


def _train(*args: str):
    return runner.invoke(app, ["train", *[str(a) for a in args]])


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_lists_stages_and_flags():
    result = _train("--help")
    assert result.exit_code == 0
    for word in ("progressive", "--nli-pairs", "--caption-pairs", "--dry-run", "--set", "--config"):
        assert word in result.output


def test_dry_run_prints_config_sizes_steps_and_memory(tiny_model, nli_pairs, tmp_path):
    out = tmp_path / "out"
    result = _train(
        "--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", out,
        "--profile", "demo", "--set", "batch_size=16", "--set", "epochs=2", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (desc,) = json.loads(result.stdout)
    assert desc["data"]["examples"] == 64 and desc["data"]["with_negative"] == 64
    assert desc["steps_per_epoch"] == 4 and desc["total_steps"] == 8
    assert desc["config"]["batch_size"] == 16 and desc["config"]["hard_negatives"] == 1
    assert desc["memory_per_device"]["total_gib"] > 0
    assert not out.exists()  # a dry run writes nothing


def test_progressive_dry_run_describes_three_stages(tiny_model, nli_pairs, demo_tables, tmp_path):
    result = _train(
        "--stage", "progressive", "--model", tiny_model, "--data", demo_tables, "--nli-pairs", nli_pairs,
        "--caption-pairs", nli_pairs, "--out", tmp_path, "--profile", "demo", "--dry-run",
        "--set", "batch_size=8", "--set", "mbeir.batch_size=16",
    )  # fmt: skip
    # caption rows are missing from an nli table: flagged in that stage, the others still described
    assert result.exit_code == 0, result.output
    nli, caption, mbeir = json.loads(result.stdout)
    assert [d["stage"] for d in (nli, caption, mbeir)] == ["nli", "caption", "mbeir"]
    assert nli["problems"] == [] and nli["init_model"] == str(tiny_model) and nli["total_steps"] > 0
    assert len(caption["problems"]) == 1 and "no 'caption' rows" in caption["problems"][0]
    assert "dry run: problem in stage caption" in result.stderr
    # each later stage starts from the model the previous one writes
    assert (
        caption["init_model"] == str(tmp_path / "nli" / "model")
        and "written by the nli stage" in caption["init_model_note"]
    )
    assert mbeir["init_model"] == str(tmp_path / "caption" / "model")
    assert mbeir["config"]["batch_size"] == 16 and mbeir["data"]["examples"] > 0 and mbeir["problems"] == []
    assert mbeir["memory_per_device"]["total_gib"] > 0
    result = _train(
        "--stage", "progressive", "--model", tiny_model, "--data", demo_tables, "--nli-pairs", nli_pairs,
        "--caption-pairs", nli_pairs, "--out", tmp_path, "--dry-run", "--set", "batch_size=8",
        "--config", "/nonexistent.yaml",
    )  # fmt: skip
    assert result.exit_code == 0
    stages = json.loads(result.stdout)
    assert all(
        "cannot read config" in d["problems"][0] and "/nonexistent.yaml" in d["problems"][0] for d in stages
    )
    assert not any(tmp_path.glob("*/manifest.json"))  # a dry run writes nothing


def test_max_steps_overrides_epochs(tiny_model, nli_pairs, tmp_path):
    result = _train(
        "--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
        "--profile", "demo", "--set", "batch_size=16", "--set", "epochs=1", "--set", "max_steps=10", "--dry-run",
    )  # fmt: skip
    (desc,) = json.loads(result.stdout)
    assert desc["steps_per_epoch"] == 4 and desc["total_steps"] == 10
    assert desc["steps_from"] == "max_steps (overrides epochs)"


def test_progressive_dry_run_prints_the_chained_plan(
    tiny_model, nli_pairs, caption_pairs, demo_tables, tmp_path
):
    out = tmp_path / "run"
    result = _train(
        "--stage", "progressive", "--model", tiny_model, "--data", demo_tables, "--nli-pairs", nli_pairs,
        "--caption-pairs", caption_pairs, "--out", out, "--profile", "demo", "--dry-run",
        "--set", "batch_size=8", "--set", "mbeir.batch_size=16", "--set", "caption.epochs=2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [s["stage"] for s in plan] == ["nli", "caption", "mbeir"]
    assert [s["objective"] for s in plan] == ["infonce"] * 3
    # each stage starts from the previous stage's merged model, the first from --model
    assert [s["init_model"] for s in plan] == [str(tiny_model), str(out / "nli" / "model"),
                                                str(out / "caption" / "model")]  # fmt: skip
    assert [s["out"] for s in plan] == [str(out / s) for s in ("nli", "caption", "mbeir")]
    nli, cap, mb = plan
    assert nli["data"]["source"] == str(nli_pairs) and cap["data"]["source"] == str(caption_pairs)
    assert mb["data"]["source"] == str(demo_tables)
    # data sizes and steps (mixed batches drop the last partial one): the tiny demo's 64 nli triplets
    # and 48 captions at batch 8, its train queries at batch 16; epochs: nli 8, caption 2, mbeir 4
    assert nli["data"]["examples"] == 64 and nli["steps_per_epoch"] == 8 and nli["total_steps"] == 64
    assert cap["data"]["examples"] == 48 and cap["steps_per_epoch"] == 6 and cap["total_steps"] == 12
    queries = read_table(demo_tables, "queries", ["split", "dataset_id", "task_id"]).to_pylist()
    train = [q for q in queries if q["split"] == "train"]
    assert mb["data"]["examples"] == len(train) > 16
    assert mb["data"]["tasks"] == len({(q["dataset_id"], q["task_id"]) for q in train})
    assert mb["steps_per_epoch"] == len(train) // 16 and mb["total_steps"] == 4 * (len(train) // 16)
    assert [s["config"]["batch_size"] for s in plan] == [8, 8, 16]
    assert cap["config"]["bidirectional"] and not nli["config"]["bidirectional"]
    assert mb["config"]["learn_temperature"] and mb["config"]["instruction"] == "random"
    assert all(s["memory_per_device"]["total_gib"] > 0 for s in plan)
    assert not out.exists()  # a dry run writes nothing


def test_unknown_config_key(tiny_model, nli_pairs, tmp_path):
    result = _train("--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
                    "--set", "learning_rate=1e-4")  # fmt: skip
    _one_line_error(result, "unknown config key 'learning_rate'", "--set")
    result = _train("--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
                    "--set", "batchsize=8")  # fmt: skip
    _one_line_error(result, "unknown config key 'batchsize'; did you mean 'batch_size'?")
    result = _train("--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
                    "--set", "mbier.lr=1")  # fmt: skip
    _one_line_error(result, "unknown stage prefix 'mbier'; did you mean 'mbeir'?")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 1.0e-4\nnli:\n  batchsize: 8\n")
    result = _train("--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
                    "--config", cfg)  # fmt: skip
    _one_line_error(result, str(cfg), "unknown config key 'batchsize'")
    result = _train("--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
                    "--set", "lr=fast")  # fmt: skip
    _one_line_error(result, "field 'lr'", "wrong type")
    assert not (tmp_path / "o").exists()


def test_missing_init_model(nli_pairs, tmp_path):
    result = _train("--stage", "caption", "--model", tmp_path / "runs" / "nli", "--pairs", nli_pairs,
                    "--out", tmp_path / "cap")  # fmt: skip
    _one_line_error(result, "model folder not found", str(tmp_path / "runs" / "nli"))
    assert not (tmp_path / "cap").exists()


def test_batch_larger_than_data(tiny_model, nli_pairs, tmp_path):
    result = _train("--stage", "nli", "--model", tiny_model, "--pairs", nli_pairs, "--out", tmp_path / "o",
                    "--set", "batch_size=65")  # fmt: skip
    _one_line_error(result, "batch size 65 is larger than the data (64 training examples)")
    assert not (tmp_path / "o").exists()


def test_training_ids_missing_from_candidates(tiny_model, demo_tables, tmp_path):
    data = tmp_path / "tables"
    shutil.copytree(demo_tables, data)
    queries = read_table(data, "queries").to_pylist()
    victim = next(q for q in queries if q["split"] == "train")
    victim["pos"] = ["9:99999999"]
    with ShardWriter(data, "queries", TABLES["queries"]) as w:
        w.write_rows(queries)
    result = _train("--stage", "mbeir", "--model", tiny_model, "--data", data, "--out", tmp_path / "o")
    _one_line_error(result, victim["qid"], "'9:99999999'", "not in the candidate table")


def test_unknown_stage(tiny_model, tmp_path):
    result = _train("--stage", "pretrain", "--model", tiny_model, "--out", tmp_path / "o")
    _one_line_error(result, "'pretrain' is not one of", "'progressive'", "'hardneg'")


def _hardneg(model, data, negatives, out, *extra):
    flags = ["--negatives", negatives] if negatives is not None else []
    return _train("--stage", "hardneg", "--model", model, "--data", data, *flags, "--out", out,
                  "--profile", "demo", "--set", "hard_negatives=3", "--set", "batch_size=4", *extra)  # fmt: skip


def test_hardneg_trains_through_the_cli(demo_mined, demo_tables, tmp_path):
    model, mined = demo_mined
    out = tmp_path / "hn"
    result = _hardneg(model, demo_tables, mined, out, "--set", "hardneg.max_steps=2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\t")[:2] == ["hardneg", "fresh"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["negatives"] == str(mined.resolve()) and manifest["counts"]["steps"] == 2


def test_hardneg_dry_run_prints_the_plan(demo_mined, demo_tables, tmp_path):
    model, mined = demo_mined
    out = tmp_path / "hn"
    result = _hardneg(model, demo_tables, mined, out, "--set", "hardneg.epochs=2", "--dry-run")
    assert result.exit_code == 0, result.output
    (desc,) = json.loads(result.stdout)
    train = [q for q in read_table(demo_tables, "queries", ["split"]).to_pylist() if q["split"] == "train"]
    assert desc["stage"] == "hardneg" and desc["objective"] == "hardneg" and desc["problems"] == []
    assert desc["init_model"] == str(model) and desc["data"]["negatives"] == str(mined)
    assert desc["data"]["examples"] == len(train) and desc["data"]["hard_negatives"] == 3
    assert desc["steps_per_epoch"] == len(train) // 4 and desc["total_steps"] == 2 * (len(train) // 4)
    assert desc["config"]["lr"] == 5e-4 and desc["memory_per_device"]["total_gib"] > 0
    assert not out.exists()
    # without --negatives the dry run still describes the stage and flags what is missing
    result = _hardneg(model, demo_tables, None, out, "--dry-run")
    assert result.exit_code == 0, result.output
    (desc,) = json.loads(result.stdout)
    (problem,) = desc["problems"]
    assert "stage hardneg needs --negatives" in problem and "`umarvel mine`" in problem
    assert desc["config"]["hard_negatives"] == 3 and "data" not in desc
    assert "dry run: problem in stage hardneg" in result.stderr and not out.exists()


def test_hardneg_bad_inputs_are_one_line(demo_mined, demo_tables, tmp_path, tmp_path_factory):
    from tests.models.tiny_models import tiny_model_dir

    model, mined = demo_mined
    out = tmp_path / "o"
    _one_line_error(_hardneg(model, demo_tables, None, out), "stage hardneg needs --negatives")
    other = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2.5-vl")
    _one_line_error(_hardneg(other, demo_tables, mined, out), "negatives were mined with another model")
    _one_line_error(
        _hardneg(model, demo_tables, tmp_path / "nothing", out), "folder not found", "--negatives"
    )
    _one_line_error(_hardneg(model, demo_tables, demo_tables, out), "--negatives", "`mine`")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(mined, unfinished)
    (unfinished / "manifest.json").unlink()
    _one_line_error(_hardneg(model, demo_tables, unfinished, out), "no manifest.json", "--negatives")
    result = _train("--stage", "mbeir", "--model", model, "--data", demo_tables, "--negatives", mined,
                    "--out", out)  # fmt: skip
    _one_line_error(result, "--negatives is for --stage hardneg, not mbeir")
    result = _train("--stage", "progressive", "--model", model, "--data", demo_tables, "--negatives", mined,
                    "--out", out, "--dry-run")  # fmt: skip
    _one_line_error(result, "--negatives is for --stage hardneg, not progressive")
    assert not out.exists()
