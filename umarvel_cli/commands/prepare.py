"""`umarvel prepare`: M-BEIR and pair corpora into tables; the built-in demo data."""

from __future__ import annotations

import typer

from umarvel_cli.errors import NotImplementedStage

app = typer.Typer(no_args_is_help=True)


@app.command("mbeir")
def mbeir() -> None:
    """Not implemented yet."""
    raise NotImplementedStage("`umarvel prepare mbeir` is not implemented yet")
