"""`umarvel embed`: encode queries or candidates into embedding shards (resumable; torchrun-aware)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from umarvel_cli.models.folder import MODEL_HELP


def command(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="Prepared tables (output of `umarvel prepare`)."),
    split: str = typer.Option("test", "--split", help="Split of the queries to encode (train/val/test)."),
    side: str = typer.Option(..., "--side", help="queries | candidates."),
    pool: str | None = typer.Option(
        None, "--pool", help="Candidate pool name from the pools table (default: all candidates)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: embeddings/part-*.parquet + manifest.json."),
    batch_size: int = typer.Option(32, "--batch-size", help="Items per forward (halved on CUDA OOM)."),
    dtype: str = typer.Option("float32", "--dtype", help="Stored vector type: float16 | float32."),
    instruction_mode: str = typer.Option(
        "first", "--instruction-mode", help="Query instruction: first | seeded (by qid) | none."
    ),
    shard_size: int = typer.Option(2048, "--shard-size", help="Items per output shard (the resume unit)."),
    on_error: str = typer.Option(
        "fail", "--on-error", help="Bad item (missing/unreadable image, empty input): fail | skip (counted)."
    ),
    force: bool = typer.Option(False, "--force", help="Recompute even when the output is up to date."),
) -> None:
    """Encode one side of a split; run it again after a kill to resume; run under torchrun for multi-GPU."""
    from umarvel_cli.embedding import run_embed

    manifest = run_embed(
        model,
        data,
        split,
        side,
        out,
        pool=pool,
        batch_size=batch_size,
        dtype=dtype,
        instruction_mode=instruction_mode,
        force=force,
        on_error=on_error,
        shard_size=shard_size,
    )
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    typer.echo(
        f"embed: {manifest.counts.get('embedded', 0):,} {side} embedded, "
        f"{manifest.counts.get('skipped', 0):,} skipped, dim {manifest.extra.get('dim')} -> {out}"
    )
