"""`umarvel index`: build a faiss index over candidate embeddings."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import device_option


def command(
    candidates: Path = typer.Option(
        ..., "--candidates", help="Candidate embeddings: an `umarvel embed` --out."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for index.faiss, the ids table and manifest.json."),
    factory: str = typer.Option(
        "Flat",
        "--factory",
        metavar="<factory>",
        help="faiss index_factory string: Flat (exact), IVF4096,Flat, HNSW32, ...",
    ),
    device: str | None = device_option(
        "cuda: shard over all visible GPUs (auto: when faiss has GPU support)."
    ),
    train_size: int = typer.Option(262_144, "--train-size", help="Vectors sampled to train IVF/PQ indexes."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the index is up to date."),
) -> None:
    """Build a faiss inner-product index over normalised candidate embeddings."""
    from umarvel_cli.retrieval.faiss_index import build_index

    manifest = build_index(
        candidates,
        out,
        factory=factory,
        gpu=None if device is None else device != "cpu",
        train_size=train_size,
        force=force,
    )
    typer.echo(
        f"index: {manifest.counts.get('vectors', 0):,} vectors, {manifest.extra.get('factory')} "
        f"on {manifest.extra.get('device')} -> {out}"
    )
