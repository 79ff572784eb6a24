"""`umarvel embed`: encode queries or candidates into embedding shards (resumable; torchrun-aware)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from umarvel_cli.cli_options import (
    InstructionMode,
    OnError,
    Side,
    Split,
    VectorDtype,
    device_option,
)
from umarvel_cli.models.folder import MODEL_HELP


def command(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="Prepared tables (output of `umarvel prepare`)."),
    split: Split = typer.Option("test", "--split", help="Split of the queries to encode."),
    side: Side = typer.Option(..., "--side", help="Which side of the split to encode."),
    pool_name: str | None = typer.Option(
        None,
        "--pool-name",
        metavar="<name>",
        help="Candidates: one pool of the pools table, e.g. mscoco_task0_test (default: all candidates).",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: embeddings/part-*.parquet + manifest.json."),
    batch_size: int = typer.Option(32, "--batch-size", help="Items per forward (halved on CUDA OOM)."),
    dtype: VectorDtype = typer.Option("float32", "--dtype", help="Stored vector type."),
    instruction_mode: InstructionMode = typer.Option(
        "first", "--instruction-mode", help="Query instruction: the task's first, one seeded by qid, or none."
    ),
    rows_per_shard: int = typer.Option(
        2048, "--rows-per-shard", help="Items per output shard (the resume unit)."
    ),
    on_error: OnError = typer.Option(
        "fail",
        "--on-error",
        help="Bad item (missing/unreadable image, empty input): stop, or skip and count it.",
    ),
    device: str | None = device_option(),
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
        pool=pool_name,
        batch_size=batch_size,
        dtype=dtype,
        instruction_mode=instruction_mode,
        force=force,
        on_error=on_error,
        shard_size=rows_per_shard,
        device=device,
    )
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    typer.echo(
        f"embed: {manifest.counts.get('embedded', 0):,} {side} embedded, "
        f"{manifest.counts.get('skipped', 0):,} skipped, dim {manifest.extra.get('dim')} -> {out}"
    )
