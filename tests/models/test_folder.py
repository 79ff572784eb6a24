"""`--model` resolution: a model folder, a train output, a progressive output; one-line errors otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from umarvel_cli.artifacts.manifest import fingerprint
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.folder import model_fingerprint, resolve_model_dir


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2_vl"}')
    return folder


def _train_output(out: Path, stage: str, finished: bool = True) -> Path:
    plan = plan_stage(out, f"train-{stage}", {"stage": stage}, {})
    _model(out / "model")
    if finished:
        finish_stage(plan, {"steps": 1})
    return out


def test_model_folder_is_itself(tmp_path):
    model = _model(tmp_path / "m")
    assert resolve_model_dir(model) == model
    assert model_fingerprint(model) == fingerprint(model)


def test_train_output_names_its_model(tmp_path):
    out = _train_output(tmp_path / "nli", "nli")
    assert resolve_model_dir(out) == out / "model"
    assert resolve_model_dir(str(out / "model")) == out / "model"
    # the model of a train output is named by the stage's manifest (changes when the stage is redone)
    assert model_fingerprint(out / "model") == fingerprint(out) != fingerprint(out / "model")


def test_progressive_output_names_its_last_stage(tmp_path):
    run = tmp_path / "run"
    for stage in ("nli", "caption", "mbeir"):
        _train_output(run / stage, stage)
    assert resolve_model_dir(run) == run / "mbeir" / "model"
    assert resolve_model_dir(run / "caption") == run / "caption" / "model"


def test_progressive_output_without_its_last_stage(tmp_path):
    run = tmp_path / "run"
    _train_output(run / "nli", "nli")
    _train_output(run / "caption", "caption")
    with pytest.raises(UmarvelError, match=r"without a finished mbeir stage.*\(caption, nli\)") as e:
        resolve_model_dir(run)
    assert e.value.file == str(run)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "model folder not found"),
        ("empty", "not a model folder"),
        ("unfinished", "train output is not finished"),
    ],
)
def test_one_line_errors(tmp_path, case, message):
    path = tmp_path / case
    if case == "empty":
        path.mkdir()
    if case == "unfinished":
        _train_output(path, "nli", finished=False)
    with pytest.raises(UmarvelError, match=message) as e:
        resolve_model_dir(path)
    assert "\n" not in str(e.value)
    assert "a finished `umarvel train` output" in str(e.value)
