"""`umarvel init-model`: write a tiny random-initialised backbone as a normal model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import Backbone, ModelKind, Pooling


def command(
    backbone: Backbone | None = typer.Option(
        None, "--backbone", help="The tiny model family (random init, built offline)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder to write (config, weights, tokenizer, umarvel.json, manifest.json)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random initialisation."),
    pool_tokens: Pooling = typer.Option(
        "content",
        "--pool-tokens",
        help="Tokens the embedding pools: content (the user turn only, as `umarvel demo`; learns faster in "
        "a tiny model) or all.",
    ),
    kind: ModelKind = typer.Option(
        "embedding", "--kind", help="embedding (the backbone) | reranker (generative, with its LM head)."
    ),
    from_model: Path | None = typer.Option(
        None,
        "--from",
        help="With --kind reranker: start the reranker from this embedding model's network (e.g. the "
        "hardneg model) instead of random weights; its LM head starts as its token embeddings.",
    ),
    force: bool = typer.Option(False, "--force", help="Rewrite even when OUT is up to date."),
) -> None:
    """Write a tiny Qwen-VL model folder that every other command treats like a real checkpoint (or a
    reranker started from an embedding model: --kind reranker --from MODEL)."""
    from umarvel_cli.models.init_stage import init_model

    _, written = init_model(
        backbone, out, seed=seed, pool_tokens=pool_tokens, kind=kind, force=force, from_model=from_model
    )
    what = f"from {from_model}" if from_model else f"{backbone}, pool_tokens={pool_tokens}, seed {seed}"
    typer.echo(f"{'wrote' if written else 'up to date:'} {out} ({kind}, {what})")
