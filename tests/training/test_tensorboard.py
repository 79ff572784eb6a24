"""`train --report-to tensorboard`: the curves of each stage reach a SummaryWriter under
OUT/tensorboard/<stage>; without the tensorboard package, one line and nothing trained."""

from __future__ import annotations

import sys
import types

from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.training import tensorboard as tb

runner = CliRunner()
FAST = ["--set", "batch_size=8", "--set", "max_steps=3", "--set", "save_every=3", "--profile", "demo"]


class FakeWriter:
    made: list[FakeWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_curves_go_to_one_writer_per_stage(tiny_model, demo_pairs, tmp_path, monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    FakeWriter.made.clear()
    out = tmp_path / "nli"
    args = ["train", "--stage", "nli", "--model", str(tiny_model), "--pairs", str(demo_pairs["nli"])]
    result = runner.invoke(app, [*args, "--out", str(out), *FAST, "--report-to", "tensorboard"])
    assert result.exit_code == 0, result.output
    (writer,) = FakeWriter.made
    assert writer.log_dir == str(out / "tensorboard" / "nli") and writer.closed
    assert {tag for tag, _, _ in writer.scalars} == {f"train/{c}" for c in tb.CURVES}
    assert sorted({step for _, _, step in writer.scalars}) == [1, 2, 3]
    losses = [v for tag, v, _ in writer.scalars if tag == "train/loss"]
    logged = [line for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == len(logged) == 3


def test_missing_tensorboard_is_one_line(tiny_model, demo_pairs, tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "tensorboard_available", lambda: False)
    args = ["train", "--stage", "nli", "--model", str(tiny_model), "--pairs", str(demo_pairs["nli"])]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), *FAST, "--report-to", "tensorboard"])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "(expected pip install 'umarvel[tensorboard]', or --report-to none)"
    )
    assert not (tmp_path / "o").exists()
