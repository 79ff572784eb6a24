"""`umarvel prepare demo`: write the built-in synthetic dataset in the exact M-BEIR layout."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import DemoSize


def command(
    out: Path = typer.Option(..., "--out", help="Folder to write the demo M-BEIR tree into."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    size: DemoSize = typer.Option(
        "tiny",
        "--size",
        help="tiny: ~30 queries per task, a second (tests). small: a few hundred training queries per "
        "task, CPU-trainable (make demo).",
    ),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT already holds this demo."),
) -> None:
    """Draw the demo dataset: images from shapes, colours, textures, sizes, positions and backgrounds,
    and texts written from the same attributes, for all 16 M-BEIR tasks; plus the NLI and caption
    corpora of the progressive stages under OUT/pairs/.

    Read it with `umarvel prepare mbeir --root OUT` and `umarvel prepare pairs`.
    """
    from umarvel_cli.data.demo import prepare_demo

    manifest, written = prepare_demo(out, seed=seed, size=size, force=force)
    c = manifest.counts
    queries = sum(v for k, v in c.items() if k.startswith("queries."))
    state = "wrote" if written else "up to date:"
    typer.echo(
        f"{state} {out}: {queries} queries, {c.get('candidates', 0)} candidates, {c.get('images', 0)} images, "
        f"{c.get('pairs.nli', 0)} NLI rows, {c.get('pairs.caption', 0)} caption pairs"
    )
