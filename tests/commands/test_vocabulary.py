"""One flag vocabulary over every command (docs/cli.md): choice flags validated while parsing, with their
values in --help and in the error; no type-name metavars; one name per concept; --debug anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer.main
from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.cli_options import DEPRECATED, check_device, pull_debug, rewrite_deprecated

runner = CliRunner()
CHOICE_FLAGS = ("--split", "--pool", "--side", "--stage", "--backbone", "--on-error", "--dtype", "--sample")


def _commands(command=None, path=()) -> Iterator[tuple[tuple[str, ...], object]]:
    command = command or typer.main.get_command(app)
    subs = getattr(command, "commands", None)
    if not subs:
        yield path, command
        return
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())


def _options(command):
    return [p for p in command.params if getattr(p, "opts", None) and p.opts[0].startswith("--")]


def test_every_documented_command_exists():
    for path in [("rerank", "score"), ("rerank", "train"), ("distill",), ("mine",), ("eval", "mbeir")]:
        assert path in COMMANDS


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_has_meaningful_metavars(path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for bad in ("<bool>", "<str>", "<list[str]>", "<text>", "<TEXT>"):
        assert bad not in result.output, f"{' '.join(path)}: {bad}"
    for retired in DEPRECATED.get(path, {}):  # a retired spelling stays a hidden alias there
        assert f"{retired} " not in result.output


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_choice_flags_are_enums_with_values_in_help(path):
    command = COMMANDS[path]
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    for param in _options(command):
        name = param.opts[0]
        if name == "--device":
            assert param.callback is not None and "<auto|cpu|cuda[:N]>" in result.output
        elif name in CHOICE_FLAGS:
            if path == ("prepare", "mbeir") and name == "--split":
                assert "<train,val,test>" in result.output  # a comma list, checked by the reader
                continue
            desc = param.type_descriptor
            assert desc.is_choice, f"{' '.join(path)} {name} is not a choice"
            assert "<" + "|".join(desc.choices) + ">" in result.output
        if name == "--pool":
            assert tuple(param.type_descriptor.choices) == ("local", "global"), path


def _minimal_args(command, skip: str) -> list[str]:
    """Required options filled with a valid choice or a dummy path."""
    args = []
    for param in _options(command):
        if param.required and param.opts[0] != skip:
            desc = param.type_descriptor
            args += [param.opts[0], desc.choices[0] if desc.is_choice else "x"]
    return args


def _bad_value_cases() -> list[tuple[tuple[str, ...], str]]:
    cases = []
    for path, command in sorted(COMMANDS.items()):
        for param in _options(command):
            name = param.opts[0]
            if name == "--device" or (name in CHOICE_FLAGS and param.type_descriptor.is_choice):
                cases.append((path, name))
    return cases


def test_bad_choices_fail_in_one_line_before_heavy_imports():
    """In a fresh interpreter: every bad choice exits 2 naming the valid values, and torch, transformers
    and faiss are never imported."""
    code = """
import json, sys
from typer.testing import CliRunner
from tests.commands.test_vocabulary import COMMANDS, _bad_value_cases, _minimal_args
from umarvel_cli.app import app
out = []
for path, name in _bad_value_cases():
    args = [*path, *_minimal_args(COMMANDS[path], name), name, "bogus"]
    r = CliRunner().invoke(app, args)
    out.append([" ".join(path), name, r.exit_code, r.stderr])
heavy = [m for m in ("torch", "transformers", "faiss") if m in sys.modules]
print(json.dumps({"cases": out, "heavy": heavy}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert len(report["cases"]) >= 20
    for path, name, code_, stderr in report["cases"]:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert code_ == 2, (path, name, stderr)
        assert len(lines) == 1 and lines[0].startswith(f"error: umarvel {path}: "), (path, name, stderr)
        assert f"'{name}'" in lines[0] and "is not one of" in lines[0], lines[0]


def test_debug_works_before_and_after_the_subcommand(tmp_path):
    args = ["index", "--candidates", str(tmp_path / "none"), "--out", str(tmp_path / "idx")]
    for argv in (["--debug", *args], [*args, "--debug"]):
        result = runner.invoke(app, argv)
        assert result.exit_code != 0 and "no embeddings table here" in str(result.exception)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert pull_debug(["a", "--debug", "--", "--debug"]) == (["a", "--", "--debug"], True)


def test_old_spellings_still_work_with_a_note(tmp_path):
    assert rewrite_deprecated(("search",), ["--embeddings=e", "--gpu", "--topk", "5"]) == [
        "--candidates=e",
        "--device=cuda",
        "--topk",
        "5",
    ]
    result = runner.invoke(
        app, ["index", "--embeddings", str(tmp_path / "none"), "--out", str(tmp_path / "i")]
    )
    assert "note: --embeddings is deprecated; use --candidates" in result.stderr
    assert "no embeddings table here" in result.stderr  # parsed as --candidates


def test_device_values():
    assert (
        check_device("auto") is None and check_device("cuda:1") == "cuda:1" and check_device("cpu") == "cpu"
    )
    with pytest.raises(typer.BadParameter, match="auto, cpu, cuda, cuda:N"):
        check_device("gpu0")


def test_rerank_train_takes_its_flags_and_checks_its_inputs(tmp_path):
    argv = ["rerank", "train", "--model", "m", "--data", "d", "--negatives", "n", "--out", "o",
            "--split", "train", "--lora-rank", "8", "--lora-alpha", "16", "--released-prompt"]  # fmt: skip
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "m: model folder not found" in lines[0], result.stderr
