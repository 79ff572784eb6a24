"""`umarvel rerank`: not implemented yet (a later issue builds it)."""

from __future__ import annotations

import typer

from umarvel_cli.errors import NotImplementedStage

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def _not_yet() -> None:
    """Not implemented yet."""
    raise NotImplementedStage("`umarvel rerank train` is not implemented yet")
