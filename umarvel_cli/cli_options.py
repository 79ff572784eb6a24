"""The CLI's one vocabulary: the choice types every command shares, and the help/alias conventions.

Choice flags are `Literal` types, so click validates them while parsing (before any heavy import)
and prints the valid values both in `--help` and in the error. The same concept has the same flag
name in every command (docs/cli.md); older spellings are rewritten here with a note on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import typer

Split = Literal["train", "val", "test"]
EvalSplit = Literal["val", "test"]
Side = Literal["queries", "candidates"]
PoolScope = Literal["local", "global"]
OnError = Literal["fail", "skip"]
VectorDtype = Literal["float16", "float32"]
Backbone = Literal["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-qwen3-vl"]
TrainStage = Literal["progressive", "nli", "caption", "mbeir", "hardneg"]
Profile = Literal["paper", "demo"]
RerankReadout = Literal["answer", "mean"]  # models/reranker.py READOUTS
InstructionMode = Literal["first", "seeded", "none"]
PairsKind = Literal["nli", "caption"]
DemoSize = Literal["tiny", "small"]
Pooling = Literal["content", "all"]
ReportTo = Literal["none", "tensorboard"]
ZeroshotSuite = Literal["paper"]
NegativeSample = Literal["top", "random"]
ModelKind = Literal["embedding", "reranker"]
TuneSplit = Literal["val"]  # fusion weights are chosen on validation, never on test

DEVICE_METAVAR = "<auto|cpu|cuda[:N]>"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def check_device(value: str | None) -> str | None:
    """`--device`: auto (None), cpu, cuda or cuda:N; checked while parsing."""
    if value is None or value == "auto":
        return None
    if not _DEVICE.match(value):
        raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N")
    return value


def device_option(help: str = "Where the model runs (auto: cuda when present).") -> Any:
    """The one `--device` option: auto | cpu | cuda | cuda:N, checked while parsing."""
    return typer.Option(None, "--device", metavar=DEVICE_METAVAR, callback=check_device, help=help)


def rerank_scores_option() -> Any:
    """U-MARVEL+ from a teacher table made elsewhere (`eval mbeir`, `eval zeroshot`)."""
    return typer.Option(
        None, "--rerank-scores", help="U-MARVEL+: fuse this `rerank score` output (made from this run)."
    )


def rerank_topk_option() -> Any:
    return typer.Option(50, "--rerank-topk", help="Candidates reranked per query (with --rerank).")


def rerank_weight_option(score: str) -> Any:
    """W of the fusion `score + W x P(Yes)`; `score` names the retrieval score the evaluation fuses."""
    return typer.Option(
        None, "--rerank-weight", help=f"W in {score} + W x P(Yes) (default 0.1, the released weight)."
    )


# Old spellings kept working: {command path: {old flag: new flag}} ("--flag=value" is rewritten too).
DEPRECATED: dict[tuple[str, ...], dict[str, str]] = {
    ("prepare", "mbeir"): {"--splits": "--split"},
    ("embed",): {"--shard-size": "--rows-per-shard", "--pool": "--pool-name"},
    ("search",): {"--embeddings": "--candidates", "--gpu": "--device=cuda", "--no-gpu": "--device=cpu"},
    ("index",): {"--embeddings": "--candidates", "--gpu": "--device=cuda", "--no-gpu": "--device=cpu"},
}


def rewrite_deprecated(path: tuple[str, ...], args: list[str]) -> list[str]:
    """Replace the old spellings of `path`'s flags by the current ones, saying so on stderr."""
    table = DEPRECATED.get(path)
    if not table:
        return args
    out = []
    for arg in args:
        name, eq, value = arg.partition("=")
        new = table.get(name)
        if new is None:
            out.append(arg)
            continue
        typer.echo(f"note: {name} is deprecated; use {new.split('=')[0]}", err=True)
        out.append(f"{new}={value}" if eq else new)
    return out


def pull_debug(args: list[str]) -> tuple[list[str], bool]:
    """`--debug` anywhere before `--` (so it works after the sub-command too)."""
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != "--debug"]
    return head + args[end:], len(head) != end


def tidy_command_tree(command: Any, path: tuple[str, ...] = ()) -> None:
    """Flags show no `<bool>` metavar, and each command rewrites its deprecated spellings."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    _blank_help_metavar(command)
    if path in DEPRECATED:
        _wrap_parse_args(command, path)
    for name, sub in (getattr(command, "commands", None) or {}).items():
        tidy_command_tree(sub, (*path, name))


def _blank_help_metavar(command: Any) -> None:
    original: Callable[[Any], Any | None] = command.get_help_option

    def get_help_option(ctx: Any) -> Any | None:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]


def _wrap_parse_args(command: Any, path: tuple[str, ...]) -> None:
    original = command.parse_args

    def parse_args(ctx: Any, args: list[str]) -> list[str]:
        return original(ctx, rewrite_deprecated(path, list(args)))

    command.parse_args = parse_args  # type: ignore[method-assign]


def is_debug(ctx: Any) -> bool:
    root = ctx.find_root()
    return bool(root.meta.get("umarvel.debug") or root.params.get("debug"))
