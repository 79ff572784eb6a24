"""Typer root: registers one sub-command per pipeline stage, nothing else."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import typer
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from umarvel_cli.boundary import abandon_stages, as_user_error, open_stages
from umarvel_cli.cli_options import is_debug, pull_debug, tidy_command_tree
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
from umarvel_cli.version import __version__

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy_command_tree(self)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args, debug = pull_debug(args)
        ctx.meta["umarvel.debug"] = debug
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(
            names, key=lambda n: PIPELINE_ORDER.index(n) if n in PIPELINE_ORDER else len(PIPELINE_ORDER)
        )

    def invoke(self, ctx: click.Context) -> Any:
        opened = open_stages()
        try:
            return super().invoke(ctx)
        except UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                raise
            where = e.ctx.command_path if e.ctx is not None else "umarvel"
            message = e.format_message().replace("Value error, ", "")
            click.echo(f"error: {where}: {message} (see {where} --help)", err=True)
            raise typer.Exit(e.exit_code) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            abandon_stages(clean=False, since=opened)
            click.echo(
                "interrupted: completed shards are kept; run the same command again to resume", err=True
            )
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader of standard output went away (`umarvel search --trec - | head`): stop quietly,
            # as a shell tool killed by SIGPIPE does, keeping what was written for a resume.
            abandon_stages(clean=False, since=opened)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
            raise typer.Exit(141) from None
        except Exception as e:
            error = as_user_error(e)
            abandon_stages(clean=error is not None, since=opened)
            if error is None or is_debug(ctx) or os.environ.get("UMARVEL_DEBUG"):
                raise
            click.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None


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
app.command("train", short_help="Contrastive training: --stage progressive|nli|caption|mbeir|hardneg.")(
    train.command
)
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
