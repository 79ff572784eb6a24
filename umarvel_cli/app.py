"""Typer root: registers one sub-command per pipeline stage, nothing else."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from umarvel_cli import __version__
from umarvel_cli.commands import (
    bench,
    demo,
    distill,
    embed,
    evaluate,
    index,
    init_model,
    mine,
    prepare,
    rerank,
    search,
    train,
)
from umarvel_cli.errors import UmarvelError

PIPELINE_ORDER = [
    "prepare",
    "train",
    "mine",
    "rerank",
    "distill",
    "embed",
    "index",
    "search",
    "eval",
    "demo",
    "init-model",
    "bench",
]


class _Root(TyperGroup):
    """Turns `UmarvelError` into one line on stderr and exit status 2 (traceback only with --debug)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(
            names, key=lambda n: PIPELINE_ORDER.index(n) if n in PIPELINE_ORDER else len(PIPELINE_ORDER)
        )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UmarvelError as e:
            if ctx.params.get("debug") or os.environ.get("UMARVEL_DEBUG"):
                raise
            click.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            click.echo(
                "interrupted: completed shards are kept; run the same command again to resume", err=True
            )
            raise typer.Exit(130) from None


app = typer.Typer(
    name="umarvel",
    cls=_Root,
    help="U-MARVEL universal multimodal retrieval: prepare → train → mine → embed → index → search → eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"umarvel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """U-MARVEL universal multimodal retrieval toolkit."""


app.add_typer(
    prepare.app, name="prepare", help="Read M-BEIR or NLI/caption corpora into tables; write the demo data."
)
app.command("train", short_help="Contrastive training: --stage progressive|nli|caption|mbeir.")(train.command)
app.command("mine", short_help="Mine hard negatives with false-negative filters.")(mine.command)
app.command("mine-negatives", hidden=True)(mine.command)  # the same command under its long name
app.add_typer(rerank.app, name="rerank", help="Pointwise MLLM reranker: train it, score candidates.")
app.command("distill", short_help="Distil the reranker's scores into the embedder (KL).")(distill.command)
app.command("embed", short_help="Encode queries or candidates into embedding shards.")(embed.command)
app.command("index", short_help="Build a faiss index over candidate embeddings.")(index.command)
app.command("search", short_help="Top-k search: exact shard-streaming or through an index.")(search.command)
app.add_typer(evaluate.app, name="eval", help="Evaluate on M-BEIR (local/global pools) or any run file.")
app.command("demo", short_help="Run the whole pipeline on the built-in demo data with a tiny model (CPU).")(
    demo.command
)
app.command("init-model", short_help="Write a tiny random-initialised backbone as a normal model folder.")(
    init_model.command
)
app.add_typer(
    bench.app, name="bench", help="Speed benchmarks, reported as ratios to a baseline run alongside."
)


def main() -> None:
    app(prog_name="umarvel")


if __name__ == "__main__":
    sys.exit(main())
