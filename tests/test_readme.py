"""The README is true: every `umarvel` command line it shows parses, the torchrun launch lines start
the CLI, and its Python example runs (against a tiny model)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer.main

from umarvel_cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _command_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(("umarvel ", "torchrun ")):
                lines.append(line)
    for cell in re.findall(r"`(umarvel [^`]+)`", README):
        lines.append(cell)
    return lines


def _parse(argv: list[str]) -> None:
    """Walk to the sub-command and let click parse its options (nothing runs)."""
    command = typer.main.get_command(app)
    path = []
    while getattr(command, "commands", None):
        name = argv.pop(0)
        assert name in command.commands, f"unknown command {' '.join([*path, name])}"
        path.append(name)
        command = command.commands[name]
    command.make_context(" ".join(["umarvel", *path]), argv)


def _umarvel_part(line: str) -> list[str] | None:
    argv = shlex.split(line)
    if argv[0] == "torchrun":
        start = argv.index("umarvel") if "umarvel" in argv else argv.index("umarvel_cli")
        argv = ["umarvel", *argv[start + 1 :]]
    if "..." in argv or any("\\|" in a for a in argv):
        return None  # a placeholder (or a table cell listing alternatives)
    return [a.strip("[]") for a in argv[1:] if not (a.startswith("[") or a.endswith("]"))] or None


def test_every_umarvel_line_in_the_readme_parses():
    lines = _command_lines()
    assert len(lines) >= 20
    parsed = 0
    for line in lines:
        argv = _umarvel_part(line)
        if argv is None or argv[-1] == "--help":
            continue
        _parse(argv)
        parsed += 1
    assert parsed >= 15


@pytest.mark.parametrize(
    "launcher", [["--no-python", sys.executable, "-m", "umarvel_cli"], ["-m", "umarvel_cli"]]
)
def test_torchrun_launch_lines_start_the_cli(launcher):
    shown = [ln for ln in _command_lines() if ln.startswith("torchrun ")]
    assert any("--no-python umarvel " in ln for ln in shown) and any("-m umarvel_cli " in ln for ln in shown)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", *launcher, "--help"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: umarvel" in proc.stdout


def test_python_example_runs(tiny_models, tmp_path, monkeypatch):
    from tests.models.tiny_models import random_image

    (code,) = _blocks("python")
    assert 'Embedder.from_pretrained("runs/train/mbeir/model")' in code
    monkeypatch.chdir(tmp_path)
    random_image(1).save("x.png")
    random_image(2).save("y.png")
    model = str(tiny_models["tiny-qwen2-vl"])
    scope: dict = {}
    exec(code.replace("runs/train/mbeir/model", model), scope)
    m, q, c, scores = scope["m"], scope["q"], scope["c"], scope["scores"]
    assert q.shape == (1, m.dim) and c.shape == (3, m.dim) and q.dtype == np.float32
    assert np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-4)
    assert tuple(scores.shape) == (1, 3)
    assert torch.allclose(scores, torch.from_numpy(q @ c.T), atol=1e-5)  # cosine, no temperature
    assert torch.allclose(
        m.logits(torch.from_numpy(q), torch.from_numpy(c)), scores / m.temperature, atol=1e-4
    )
    # the same candidates given as Records, paths and an instruction-free query embed identically
    from umarvel_cli.data.records import Record

    again = m.encode_candidates(
        [Path("x.png"), Record("c2", text="a caption", image=tmp_path / "y.png"), {"text": "a plain text"}]
    )
    assert np.allclose(again, c, atol=1e-5)
    assert not np.allclose(m.encode_queries(["a red circle"]), q, atol=1e-3)  # the instruction counts
