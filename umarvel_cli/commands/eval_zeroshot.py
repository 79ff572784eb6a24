"""`umarvel eval zeroshot`: score a model or a run on a zero-shot benchmark with its own protocol."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import (
    ZeroshotSuite,
    device_option,
    rerank_scores_option,
    rerank_topk_option,
    rerank_weight_option,
)


def command(
    out: Path = typer.Option(
        ..., "--out", help="Folder for metrics.json, report.md, per_query.csv, run.trec."
    ),
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        metavar="<name>",
        help="A benchmark of data_manifests/zeroshot.yaml (or use --suite).",
    ),
    data: Path | None = typer.Option(None, "--data", help="Tables: the --out of `umarvel prepare zeroshot`."),
    run: Path | None = typer.Option(
        None, "--run", help="Any system's run in the release's ids: an `umarvel search` --out or a TREC file."
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Embed with this model folder, search each task's pool, evaluate."
    ),
    suite: ZeroshotSuite | None = typer.Option(
        None, "--suite", help="paper: every benchmark whose release is under --root/<name>/, with --model."
    ),
    root: Path | None = typer.Option(None, "--root", help="With --suite: the folder holding the releases."),
    topk: int = typer.Option(100, "--topk", help="Candidates retrieved per query with --model."),
    force: bool = typer.Option(False, "--force", help="Evaluate again even when up to date."),
    rerank: Path | None = typer.Option(
        None, "--rerank", help="U-MARVEL+: rerank each query's top-k (within its gallery) with this reranker."
    ),
    rerank_scores: Path | None = rerank_scores_option(),
    rerank_topk: int = rerank_topk_option(),
    rerank_weight: float | None = rerank_weight_option("score"),
    tune_weight_on: str | None = typer.Option(
        None,
        "--tune-weight-on",
        metavar="<split>",
        help="Choose W on this split of the benchmark (never test, never the evaluated one), e.g. CIRCO val.",
    ),
    tune_data: Path | None = typer.Option(
        None, "--tune-data", help="With --tune-weight-on: that split's tables (`prepare zeroshot --split`)."
    ),
    tune_run: Path | None = typer.Option(
        None, "--tune-run", help="With --tune-weight-on: a run over --tune-data (else searched with --model)."
    ),
    tune_rerank_scores: Path | None = typer.Option(
        None, "--tune-rerank-scores", help="Teacher scores of --tune-run (else scored here with --rerank)."
    ),
    device: str | None = device_option(),
) -> None:
    """Recall@k / median and mean rank (MSR-VTT, MSVD, Flickr30K, ShareGPT4V, Urban-1K, VisDial),
    CIRCO mAP@k (and its test-server submission file), GeneCIS R@k within each query's gallery,
    SugarCrepe and CC-Neg choice accuracy; the paper's number beside ours in report.md."""
    from umarvel_cli.evaluation.zeroshot_rerank import ZeroshotRerank
    from umarvel_cli.evaluation.zeroshot_suite import eval_zeroshot

    reranking = ZeroshotRerank(
        scores=rerank_scores,
        reranker=rerank,
        topk=rerank_topk,
        weight=rerank_weight,
        tune_on=tune_weight_on,
        device=device,
        tune_data=tune_data,
        tune_run=tune_run,
        tune_scores=tune_rerank_scores,
    )
    result = eval_zeroshot(
        out, benchmark, data, run, model, suite, root, topk=topk, force=force, rerank=reranking
    )
    if "suite" in result:
        done = result["suite"]
        typer.echo(f"evaluated {', '.join(done['evaluated']) or 'nothing'} -> {done['summary']}")
        return
    record = result["record"]
    for task in record["tasks"]:
        typer.echo(f"{task['task']}\t{task['headline']}\t{task['score']:.4f}\t({task['n_queries']} queries)")
    if record["headline"]:
        typer.echo(f"{record['headline']['name']}\t{record['headline']['score']:.4f}")
    if record.get("rerank"):
        for task in record["rerank"]["retrieval_tasks"]:
            typer.echo(f"{task['task']}\t{task['headline']}\t{task['score']:.4f}\t(retrieval only)")
        typer.echo(f"reranked: W = {record['rerank']['weight']:g} ({record['rerank']['weight_source']})")
    typer.echo(f"-> {out}")
