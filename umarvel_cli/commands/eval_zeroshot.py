"""`umarvel eval zeroshot`: score a run on a zero-shot benchmark with the benchmark's own protocol."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    benchmark: str = typer.Option(..., "--benchmark", help="A benchmark of data_manifests/zeroshot.yaml."),
    data: Path = typer.Option(..., "--data", help="Tables: the --out of `umarvel prepare zeroshot`."),
    run: Path = typer.Option(
        ..., "--run", help="Any system's run: an `umarvel search` --out or a TREC run file, release ids."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for metrics.json, report.md, per_query.csv, run.trec."
    ),
    force: bool = typer.Option(False, "--force", help="Evaluate again even when up to date."),
) -> None:
    """Recall@k / median and mean rank (MSR-VTT, MSVD, Flickr30K), CIRCO mAP@k (and its test-server
    submission file), GeneCIS R@k within each query's gallery, SugarCrepe choice accuracy."""
    from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot

    record = evaluate_zeroshot(benchmark, data, out, run, force=force)
    for task in record["tasks"]:
        typer.echo(f"{task['task']}\t{task['headline']}\t{task['score']:.4f}\t({task['n_queries']} queries)")
    if record["headline"]:
        typer.echo(f"{record['headline']['name']}\t{record['headline']['score']:.4f}")
    typer.echo(f"-> {out}")
