"""`umarvel rerank`: score retrieved candidates with a pointwise reranker (training: a later step)."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.errors import NotImplementedStage

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def _not_yet() -> None:
    """Not implemented yet."""
    raise NotImplementedStage("`umarvel rerank train` is not implemented yet")


@app.command("score")
def score(
    model: Path = typer.Option(..., "--model", help="Reranker folder (generative Qwen-VL)."),
    data: Path = typer.Option(
        ..., "--data", help="Prepared tables (`prepare mbeir` / `prepare demo` --out)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the teacher table and its manifest."),
    run: Path | None = typer.Option(
        None, "--run", help="Candidates from this run (search/eval output or TREC)."
    ),
    retriever: Path | None = typer.Option(
        None, "--retriever", help="Or search here with this embedding model."
    ),
    split: str | None = typer.Option(None, "--split", help="Queries of this split (with --retriever)."),
    pool: str = typer.Option("local", "--pool", help="local or global (with --retriever)."),
    topk: int = typer.Option(50, "--topk", help="Candidates reranked per query."),
    sample: float | None = typer.Option(None, "--sample", help="Share of every task's queries (e.g. 0.1)."),
    seed: int = typer.Option(42, "--seed", help="Seed of the per-task sampler."),
    batch_size: int = typer.Option(16, "--batch-size", help="Pairs per forward pass (at most)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if present)."),
    force: bool = typer.Option(False, "--force", help="Score again even when up to date."),
) -> None:
    """P(Yes) of each query's top-k candidates (one forward pass per pair), as a `teacher` table."""
    from umarvel_cli.reranking.score_stage import rerank_score

    manifest = rerank_score(
        model,
        data,
        out,
        run=run,
        retriever=retriever,
        split=split,
        pool=pool,
        topk=topk,
        sample=sample,
        seed=seed,
        batch_size=batch_size,
        device=device,
        force=force,
    )
    typer.echo(f"{manifest.counts['pairs']} pairs of {manifest.counts['queries']} queries -> {out}")
