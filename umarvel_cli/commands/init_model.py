"""`umarvel init-model`: write a tiny random-initialised backbone as a normal model folder."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    backbone: str = typer.Option(
        ...,
        "--backbone",
        help="tiny-qwen2-vl | tiny-qwen2.5-vl | tiny-qwen3-vl (random init, built offline).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder to write (config, weights, tokenizer, umarvel.json)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random initialisation."),
    kind: str = typer.Option(
        "embedding", "--kind", help="embedding (the backbone) | reranker (generative, with its LM head)."
    ),
) -> None:
    """Write a tiny Qwen-VL model folder that every other command treats like a real checkpoint."""
    from umarvel_cli.models.tiny import init_tiny_model

    path = init_tiny_model(backbone, out, seed=seed, kind=kind)
    typer.echo(str(path))
