"""`umarvel eval zeroshot`: score a model or a run on a zero-shot benchmark with its own protocol."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import ZeroshotSuite


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
) -> None:
    """Recall@k / median and mean rank (MSR-VTT, MSVD, Flickr30K, ShareGPT4V, Urban-1K, VisDial),
    CIRCO mAP@k (and its test-server submission file), GeneCIS R@k within each query's gallery,
    SugarCrepe and CC-Neg choice accuracy; the paper's number beside ours in report.md."""
    from umarvel_cli.evaluation.zeroshot_suite import eval_zeroshot

    result = eval_zeroshot(out, benchmark, data, run, model, suite, root, topk=topk, force=force)
    if "suite" in result:
        done = result["suite"]
        typer.echo(f"evaluated {', '.join(done['evaluated']) or 'nothing'} -> {done['summary']}")
        return
    record = result["record"]
    for task in record["tasks"]:
        typer.echo(f"{task['task']}\t{task['headline']}\t{task['score']:.4f}\t({task['n_queries']} queries)")
    if record["headline"]:
        typer.echo(f"{record['headline']['name']}\t{record['headline']['score']:.4f}")
    typer.echo(f"-> {out}")
