"""`umarvel distill`: distil the reranker's fused scores into the embedder (the distill training stage)."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import Profile, device_option
from umarvel_cli.commands.train import echo_result


def command(
    model: Path = typer.Option(
        ..., "--model", help="The hardneg model (an `umarvel train --stage hardneg` --out)."
    ),
    data: Path = typer.Option(..., "--data", help="Prepared tables (`umarvel prepare mbeir`)."),
    teacher: Path = typer.Option(..., "--teacher", help="Teacher scores (an `umarvel rerank score` --out)."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (model/, adapter/, config.yaml, train_log.jsonl, manifest.json)."
    ),
    profile: Profile = typer.Option(
        "paper", "--profile", help="Defaults: paper (U-MARVEL values) or demo (tiny model on CPU)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML overrides: top-level keys, or a `distill:` section."
    ),
    set_: list[str] = typer.Option(
        [], "--set", metavar="<key=value>", help="Training config override (repeatable)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved config, data sizes and steps; train nothing."
    ),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
    device: str | None = device_option("Where to train (auto: cuda when present)."),
) -> None:
    """KL(teacher ‖ student) over each sampled query's top-k: teacher logits F/2/τ (F = cosine + w·P(Yes),
    τ detached), student logits cosine/τ. The same stage as `train`: resumable, up to date on rerun,
    runs under torchrun."""
    from umarvel_cli.training.dispatch import train
    from umarvel_cli.training.stages import StageRequest

    req = StageRequest(
        "distill", model, out, data, profile=profile, config_file=config, sets=list(set_), force=force,
        device=device, teacher=teacher,
    )  # fmt: skip
    echo_result(train(req, dry_run), dry_run)
