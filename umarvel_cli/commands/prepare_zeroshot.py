"""`umarvel prepare zeroshot`: read one zero-shot benchmark's release into tables."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import EvalSplit


def command(
    benchmark: str = typer.Option(
        ...,
        "--benchmark",
        metavar="<name>",
        help="A benchmark of data_manifests/zeroshot.yaml: circo, msrvtt, msvd, flickr30k, genecis, sugarcrepe, sharegpt4v, urban1k, visdial, ccneg.",
    ),
    root: Path = typer.Option(..., "--root", help="The benchmark's release folder, as its authors ship it."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: queries, candidates, qrels, galleries tables."
    ),
    split: EvalSplit | None = typer.Option(
        None, "--split", help="Split to read (default: the benchmark's eval split)."
    ),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
) -> None:
    """Read the release exactly as published (ids stay the release's own) into the M-BEIR tables, with
    per-query galleries where the benchmark ranks within them. Nothing is written when an annotation
    file is missing or names an image or video that is not there."""
    from umarvel_cli.data.zeroshot import prepare_zeroshot

    prepare_zeroshot(benchmark, root, out, split=split, force=force)
