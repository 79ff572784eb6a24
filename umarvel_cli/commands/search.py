"""`umarvel search`: top-k candidates per query, exact (streaming) or through a faiss index."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    queries: Path = typer.Option(..., "--queries", help="Query embeddings: an `umarvel embed` --out."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the run table (run/part-*.parquet) and manifest."
    ),
    index: Path | None = typer.Option(None, "--index", help="A folder written by `umarvel index`."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="Candidate embeddings for exact search that streams shard by shard."
    ),
    topk: int = typer.Option(100, "--topk", help="Candidates kept per query."),
    trec: Path | None = typer.Option(None, "--trec", help="Also write a TREC run file here."),
    batch_size: int = typer.Option(4096, "--batch-size", help="Queries scored per matmul tile."),
    gpu: bool | None = typer.Option(
        None, "--gpu/--no-gpu", help="Search on GPU (default: when one is visible)."
    ),
    force: bool = typer.Option(False, "--force", help="Search again even when the run is up to date."),
) -> None:
    """Search query embeddings against an index (--index) or candidate embeddings (--embeddings)."""
    from umarvel_cli.retrieval.search_stage import run_search

    manifest = run_search(
        queries,
        out,
        index=index,
        embeddings=embeddings,
        topk=topk,
        batch_size=batch_size,
        trec=trec,
        gpu=gpu,
        force=force,
    )
    typer.echo(
        f"search: {manifest.counts.get('queries', 0):,} queries, {manifest.counts.get('rows', 0):,} rows "
        f"({manifest.extra.get('method')}, {manifest.extra.get('device')}) -> {out}",
        err=trec is not None and str(trec) == "-",  # stdout carries the TREC run then
    )
