"""`umarvel distill`: distil the reranker's scores into the embedder (issue 16). The flags are final;
the stage itself is not built yet, so it says so in one line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.errors import NotImplementedStage


def command(
    model: Path = typer.Option(
        ..., "--model", help="The hardneg model (an `umarvel train --stage hardneg` --out)."
    ),
    data: Path = typer.Option(..., "--data", help="Prepared tables (`umarvel prepare mbeir`)."),
    teacher: Path = typer.Option(..., "--teacher", help="Teacher scores (an `umarvel rerank score` --out)."),
    out: Path = typer.Option(..., "--out", help="Output folder for the distilled model."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="<key=value>", help="Training config override (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config; train nothing."),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
) -> None:
    """KL from the reranker-fused teacher scores to the embedder's cosine scores. Not built yet."""
    raise NotImplementedStage("`umarvel distill` is not built yet (issue 16)")
