"""`umarvel search`: top-k candidates per query, exact (streaming) or through a faiss index."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import device_option


def command(
    queries: Path = typer.Option(..., "--queries", help="Query embeddings: an `umarvel embed` --out."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the run table (run/part-*.parquet) and manifest."
    ),
    index: Path | None = typer.Option(None, "--index", help="A folder written by `umarvel index`."),
    candidates: Path | None = typer.Option(
        None,
        "--candidates",
        help="Candidate embeddings (an `umarvel embed` --out) for exact search streamed shard by shard.",
    ),
    topk: int = typer.Option(100, "--topk", help="Candidates kept per query."),
    trec: Path | None = typer.Option(None, "--trec", help="Also write a TREC run file here."),
    batch_size: int = typer.Option(4096, "--batch-size", help="Queries scored per matmul tile."),
    device: str | None = device_option("Where to search (auto: a GPU when visible)."),
    force: bool = typer.Option(False, "--force", help="Search again even when the run is up to date."),
) -> None:
    """Search query embeddings against an index (--index) or candidate embeddings (--candidates)."""
    from umarvel_cli.retrieval.search_stage import run_search

    manifest = run_search(
        queries,
        out,
        index=index,
        embeddings=candidates,
        topk=topk,
        batch_size=batch_size,
        trec=trec,
        gpu=None if device is None else device != "cpu",
        force=force,
    )
    typer.echo(
        f"search: {manifest.counts.get('queries', 0):,} queries, {manifest.counts.get('rows', 0):,} rows "
        f"({manifest.extra.get('method')}, {manifest.extra.get('device')}) -> {out}",
        err=trec is not None and str(trec) == "-",  # stdout carries the TREC run then
    )
