"""`umarvel eval`: evaluation sub-commands (M-BEIR for now)."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import (
    EvalSplit,
    PoolScope,
    TuneSplit,
    device_option,
    rerank_scores_option,
    rerank_topk_option,
    rerank_weight_option,
)
from umarvel_cli.commands import eval_zeroshot
from umarvel_cli.models.folder import MODEL_HELP

app = typer.Typer(no_args_is_help=True)


@app.command("mbeir")
def mbeir(
    data: Path = typer.Option(..., "--data", help="Prepared tables: the --out of `umarvel prepare mbeir`."),
    split: EvalSplit = typer.Option("test", "--split", help="Split whose queries are scored."),
    pool: PoolScope = typer.Option(
        "local", "--pool", help="local (each task's own pool) or global (the union pool)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json, report.md, CSV, TREC run, chart."),
    model: Path | None = typer.Option(
        None, "--model", help=f"Embed with this model, search, evaluate. {MODEL_HELP}"
    ),
    run: Path | None = typer.Option(
        None, "--run", help="Evaluate an existing run: an `umarvel search` --out or a TREC run file."
    ),
    modality_filter: bool = typer.Option(
        False,
        "--modality-filter",
        help="Global only: restrict candidates to the task's modality (NON-standard).",
    ),
    topk: int = typer.Option(
        100,
        "--topk",
        help="Candidates retrieved per query with --model (>= 10; hit@50/100 only when topk reaches them).",
    ),
    device: str | None = device_option(),
    force: bool = typer.Option(False, "--force", help="Evaluate again even when up to date."),
    rerank_scores: Path | None = rerank_scores_option(),
    rerank: Path | None = typer.Option(
        None, "--rerank", help="U-MARVEL+: rerank the top-k with this reranker."
    ),
    rerank_topk: int = rerank_topk_option(),
    rerank_weight: float | None = rerank_weight_option("cosine"),
    tune_weight_on: TuneSplit | None = typer.Option(
        None, "--tune-weight-on", help="val: choose W on the validation split (never on test)."
    ),
    val_run: Path | None = typer.Option(
        None, "--val-run", help="Validation run for --tune-weight-on (with --run)."
    ),
    val_rerank_scores: Path | None = typer.Option(
        None, "--val-rerank-scores", help="Teacher scores of --val-run (else scored here with --rerank)."
    ),
) -> None:
    """Score a model or a run on M-BEIR exactly as UniIR does (Recall@k = hit rate; k=10 for the
    Fashion200K tasks and FashionIQ, else 5), per task in UniIR's order and averaged."""
    from umarvel_cli.evaluation import evaluate_mbeir
    from umarvel_cli.evaluation.rerank_fusion import RerankOptions

    reranking = RerankOptions(
        scores=rerank_scores,
        reranker=rerank,
        topk=rerank_topk,
        weight=rerank_weight,
        tune_on=tune_weight_on,
        device=device,
        val_run=val_run,
        val_scores=val_rerank_scores,
    )
    record = evaluate_mbeir(
        data,
        split,
        pool,
        out,
        model=model,
        run=run,
        modality_filter=modality_filter,
        topk=topk,
        force=force,
        device=device,
        rerank=reranking,
    )
    for task in record["tasks"]:
        typer.echo(f"{task['task']}\tRecall@{task['k']}\t{task['score']:.4f}\t({task['n_queries']} queries)")
    if record.get("rerank"):
        before = record["rerank"]["retrieval_only"]["mean"]
        typer.echo(f"retrieval only\t{before:.4f}\t(reranked: W = {record['rerank']['weight']})")
    mean = record["headline"]["mean"]
    typer.echo(f"mean\t\t{mean:.4f}\t(over {record['headline']['over_tasks']} tasks) -> {out}")


app.command("zeroshot", short_help="Score a run on a zero-shot benchmark (CIRCO, MSR-VTT, GeneCIS, ...).")(
    eval_zeroshot.command
)
