"""`umarvel rerank train|score`: the pointwise MLLM reranker (issue 16). The flags are final; the
stage itself is not built yet, so both say so in one line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import PoolScope, Split
from umarvel_cli.errors import NotImplementedStage

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train(
    model: Path = typer.Option(..., "--model", help="Base generative model folder (an Instruct checkpoint)."),
    data: Path = typer.Option(..., "--data", help="Prepared tables (`umarvel prepare mbeir`)."),
    negatives: Path = typer.Option(..., "--negatives", help="Mined negatives (an `umarvel mine` --out)."),
    out: Path = typer.Option(..., "--out", help="Output folder for the reranker."),
    split: Split = typer.Option("train", "--split", help="Split whose queries train the reranker."),
    lora_rank: int = typer.Option(128, "--lora-rank", help="LoRA rank."),
    lora_alpha: int = typer.Option(256, "--lora-alpha", help="LoRA alpha."),
    released_prompt: bool = typer.Option(
        False, "--released-prompt", help="Use the released prompt verbatim (for released reranker weights)."
    ),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
) -> None:
    """Train the reranker on (query, candidate) prompts answered Yes/No. Not built yet."""
    raise NotImplementedStage("`umarvel rerank train` is not built yet (issue 16)")


@app.command("score")
def score(
    model: Path = typer.Option(..., "--model", help="Reranker folder (an `umarvel rerank train` --out)."),
    data: Path = typer.Option(..., "--data", help="Prepared tables (`umarvel prepare mbeir`)."),
    out: Path = typer.Option(..., "--out", help="Output folder for the teacher table."),
    run: Path | None = typer.Option(
        None, "--run", help="Candidates from this run (an `umarvel search` --out)."
    ),
    retriever: Path | None = typer.Option(
        None, "--retriever", help="Or: search the candidates here with this embedding model."
    ),
    split: Split = typer.Option(
        "test", "--split", help="With --retriever: the split whose queries are scored."
    ),
    pool: PoolScope = typer.Option("local", "--pool", help="With --retriever: local or global pool."),
    topk: int = typer.Option(50, "--topk", help="Candidates scored per query."),
    sample_fraction: float | None = typer.Option(
        None, "--sample-fraction", help="Score this share of every task's queries (seeded), e.g. 0.1."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the query sample."),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
) -> None:
    """P(Yes) of each (query, candidate) pair of a run's top-k, written as a teacher table. Not built yet."""
    raise NotImplementedStage("`umarvel rerank score` is not built yet (issue 16)")
