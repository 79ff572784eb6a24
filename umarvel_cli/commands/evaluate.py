"""`umarvel eval`: not implemented yet (a later issue builds it)."""

from __future__ import annotations

import typer

from umarvel_cli.errors import NotImplementedStage

app = typer.Typer(no_args_is_help=True)


@app.command("mbeir")
def _not_yet() -> None:
    """Not implemented yet."""
    raise NotImplementedStage("`umarvel eval mbeir` is not implemented yet")
