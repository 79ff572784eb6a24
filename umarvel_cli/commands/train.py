"""`umarvel train`: contrastive training stages and the progressive transition."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from umarvel_cli.cli_options import Profile, ReportTo, TrainStage, device_option
from umarvel_cli.models.folder import MODEL_HELP

STAGE_HELP = (
    "nli (text pairs, contradiction as hard negative) | caption (image-caption, both directions) | "
    "mbeir (M-BEIR train queries with instructions, learnable temperature) | "
    "progressive (nli -> caption -> mbeir under OUT/nli, OUT/caption, OUT/mbeir, each from the "
    "previous stage's merged model; finished stages are skipped, so the chain resumes) | "
    "hardneg (from the mbeir model with --negatives, the rows `umarvel mine` kept with that model: "
    "k mined negatives per query shared across the batch with the in-batch ones)."
)


def command(
    stage: TrainStage = typer.Option(..., "--stage", help=STAGE_HELP),
    model: Path = typer.Option(
        ...,
        "--model",
        help=f"Init model. {MODEL_HELP}",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (model/, adapter/, config.yaml, train_log.jsonl, manifest.json)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Tables from `prepare mbeir` (mbeir, hardneg and progressive stages)."
    ),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="Pairs table from `prepare pairs` (nli / caption rows by kind)."
    ),
    nli_pairs: Path | None = typer.Option(
        None, "--nli-pairs", help="progressive: pairs table for the nli stage (default: --pairs)."
    ),
    caption_pairs: Path | None = typer.Option(
        None, "--caption-pairs", help="progressive: pairs table for the caption stage (default: --pairs)."
    ),
    negatives: Path | None = typer.Option(
        None, "--negatives", help="hardneg: the mined negatives (an `umarvel mine` --out)."
    ),
    profile: Profile = typer.Option(
        "paper", "--profile", help="Defaults: paper (U-MARVEL values) or demo (tiny model on CPU)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML overrides: top-level keys for every stage, `nli:`/`caption:`/`mbeir:`/`hardneg:` sections.",
    ),
    sets: list[str] = typer.Option(
        [],
        "--set",
        metavar="<key=value>",
        help="Override one key: key=value or stage.key=value (repeatable).",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the resolved config, data sizes, steps and memory per device; train nothing.",
    ),
    report_to: ReportTo = typer.Option(
        "none",
        "--report-to",
        help="Also write the training curves for TensorBoard under OUT/tensorboard/<stage> "
        "(needs `pip install 'umarvel[tensorboard]'`).",
    ),
    force: bool = typer.Option(False, "--force", help="Redo stages that are up to date."),
    device: str | None = device_option("Where to train (auto: cuda when present)."),
) -> None:
    """Train the embedder contrastively (InfoNCE over the global batch, false negatives masked).

    Runs unchanged under `torchrun --nproc-per-node N --no-python umarvel train ...`. Killed runs resume from the
    last checkpoint when the same command is run again.
    """
    from umarvel_cli.training.dispatch import train
    from umarvel_cli.training.stages import StageRequest

    req = StageRequest(
        stage, model, out, data, pairs, profile, config, list(sets), force, device, nli_pairs, caption_pairs,
        negatives=negatives,
    )  # fmt: skip
    echo_result(train(req, dry_run, report_to=report_to), dry_run)


def echo_result(result: dict, dry_run: bool) -> None:
    """What `train` (and `distill`) print: the plan as JSON with its problems on stderr, or one line
    per stage run (stage, status, model folder)."""
    if dry_run:
        typer.echo(json.dumps(result["stages"], indent=2))
        for s in result["stages"]:
            for problem in s["problems"]:
                typer.echo(f"dry run: problem in stage {s['stage']}: {problem}", err=True)
    else:
        for s in result["stages"]:
            typer.echo(f"{s['stage']}\t{s['status']}\t{s['model']}")
