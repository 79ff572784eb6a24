"""`umarvel demo`: the whole pipeline on the built-in demo data with a tiny model, on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import Backbone, DemoSize, EvalSplit


def command(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for every stage's output (resumable)."),
    size: DemoSize = typer.Option("small", "--size", help="Demo data size: tiny (seconds) or small."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the model."),
    backbone: Backbone = typer.Option("tiny-qwen2-vl", "--backbone", help="The tiny model family."),
    split: EvalSplit = typer.Option("test", "--split", help="Split the models are evaluated on."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        metavar="<key=value>",
        help="Training config override for every training stage, or stage.key=value for one (repeatable).",
    ),
    force: bool = typer.Option(False, "--force", help="Redo every step."),
    ablations: bool = typer.Option(
        False,
        "--ablations",
        help="Also run the paper's switches against the default (two seeds each): OUT/ablations/report.md.",
    ),
) -> None:
    """The whole recipe on demo data: prepare → init-model → train progressive → mine → train hardneg →
    rerank train → rerank score → distill → eval every model (local and global pools) → U-MARVEL+ →
    eval zeroshot; writes OUT/report.md and OUT/report.json (the paper's ablation table in miniature)."""
    from umarvel_cli.demo import run_demo

    result = run_demo(
        out,
        size=size,
        seed=seed,
        backbone=backbone,
        split=split,
        force=force,
        train_overrides=set_,
        ablations=ablations,
    )
    typer.echo(result.report.read_text() if result.report else "")
