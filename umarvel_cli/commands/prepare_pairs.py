"""`umarvel prepare pairs`: read an NLI csv or a caption corpus into the `pairs` table."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import OnError, PairsKind


def command(
    input: Path = typer.Option(
        ...,
        "--input",
        help="nli: a csv with header sent0,sent1[,hard_neg] (SimCSE NLI). caption: a jsonl of "
        '{"image", "caption"|"text"} records, a JSON list of them, or the CC3M train_anno.json dict.',
    ),
    kind: PairsKind = typer.Option(
        ..., "--kind", help="nli (text triplets) or caption (caption→image pairs)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder for the pairs table and manifest.json."),
    images_root: Path = typer.Option(
        None,
        "--images-root",
        help="caption: the folder image paths are relative to (default: the input file's folder); "
        "absolute paths must lie under it.",
    ),
    on_error: OnError = typer.Option(
        "fail",
        "--on-error",
        help="fail: stop at the first bad row with one line naming file, line and field (exit 2). "
        "skip: leave bad rows out, count them in the manifest and list them in OUT/rejected.jsonl.",
    ),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
) -> None:
    """Read the corpus of a progressive training stage (nli, then caption) into OUT/pairs/."""
    from umarvel_cli.data.pairs import prepare_pairs

    manifest = prepare_pairs(input, out, kind, images_root=images_root, on_error=on_error, force=force)
    typer.echo(f"{out}: {manifest.counts['pairs']} {kind} pairs, {manifest.counts['rejected']} rejected")
