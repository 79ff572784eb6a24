"""`umarvel rerank train|score`: the pointwise MLLM reranker (issue 16). `train` is the rerank
training stage; `score` writes teacher tables."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import PoolScope, Profile, Split, device_option

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train(
    model: Path = typer.Option(..., "--model", help="Base generative model folder (an Instruct checkpoint)."),
    data: Path = typer.Option(..., "--data", help="Prepared tables (`umarvel prepare mbeir`)."),
    negatives: Path = typer.Option(..., "--negatives", help="Mined negatives (an `umarvel mine` --out)."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (model/, adapter/, config.yaml, train_log.jsonl, manifest.json)."
    ),
    split: Split = typer.Option("train", "--split", help="Split whose queries train the reranker."),
    lora_rank: int = typer.Option(128, "--lora-rank", help="LoRA rank."),
    lora_alpha: int = typer.Option(256, "--lora-alpha", help="LoRA alpha."),
    released_prompt: bool = typer.Option(
        False, "--released-prompt", help="Use the released prompt verbatim (for released reranker weights)."
    ),
    profile: Profile = typer.Option(
        "paper", "--profile", help="Defaults: paper (U-MARVEL values) or demo (tiny model on CPU)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML overrides: top-level keys, or a `rerank:` section."
    ),
    set_: list[str] = typer.Option(
        [], "--set", metavar="<key=value>", help="Training config override (repeatable; wins over the flags)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved config, data sizes and steps; train nothing."
    ),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
    device: str | None = device_option("Where to train (auto: cuda when present)."),
) -> None:
    """Train the reranker: one prompt per (query, candidate) pair answered "Yes" (a positive) or "No" (a
    negative drawn from the mined rows), cross-entropy on the answer token. The same stage as `train`:
    resumable, up to date on rerun, runs under torchrun."""
    from umarvel_cli.commands.train import echo_result
    from umarvel_cli.training.dispatch import train as run_train
    from umarvel_cli.training.stages import StageRequest

    flags = [f"lora_rank={lora_rank}", f"lora_alpha={lora_alpha}"]
    flags += [f"rerank_prompt={'released' if released_prompt else 'clean'}"]
    req = StageRequest(
        "rerank", model, out, data, profile=profile, config_file=config, sets=flags + list(set_),
        force=force, device=device, negatives=negatives, split=split,
    )  # fmt: skip
    echo_result(run_train(req, dry_run), dry_run)


@app.command("score")
def score(
    model: Path = typer.Option(
        ..., "--model", help="Reranker folder (generative Qwen-VL; `init-model --kind reranker`)."
    ),
    data: Path = typer.Option(..., "--data", help="Prepared tables (`umarvel prepare mbeir`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the teacher table and its manifest."),
    run: Path | None = typer.Option(
        None, "--run", help="Candidates from this run (search/eval output or TREC)."
    ),
    retriever: Path | None = typer.Option(
        None, "--retriever", help="Or: search the candidates here with this embedding model."
    ),
    split: Split | None = typer.Option(None, "--split", help="Queries of this split (with --retriever)."),
    pool: PoolScope = typer.Option("local", "--pool", help="With --retriever: local or global pool."),
    topk: int = typer.Option(50, "--topk", help="Candidates reranked per query."),
    sample_fraction: float | None = typer.Option(
        None, "--sample-fraction", help="Score this share of every task's queries (seeded), e.g. 0.1."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the per-task sampler."),
    batch_size: int = typer.Option(16, "--batch-size", help="Pairs per forward pass (at most)."),
    device: str | None = device_option(),
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
        sample=sample_fraction,
        seed=seed,
        batch_size=batch_size,
        device=device,
        force=force,
    )
    typer.echo(f"{manifest.counts['pairs']} pairs of {manifest.counts['queries']} queries -> {out}")
