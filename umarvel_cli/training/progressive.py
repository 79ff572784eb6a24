"""The progressive transition: nli → caption → mbeir, each stage from the previous stage's merged model.

Stage outputs live under OUT/nli, OUT/caption, OUT/mbeir. Each stage's manifest names its init
model by the previous stage's manifest hash, so re-running the chain skips finished stages, resumes
an interrupted one, and redoes everything downstream of a stage that changed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from umarvel_cli.models.folder import MODEL_DIR
from umarvel_cli.training.config import PROGRESSIVE_CHAIN
from umarvel_cli.training.stages import StageRequest, StageResult, run_stage


def stage_request(req: StageRequest, stage: str, model: Path) -> StageRequest:
    """The chain request narrowed to one stage: its own output folder, init model and pairs table."""
    pairs = {"nli": req.nli_pairs or req.pairs, "caption": req.caption_pairs or req.pairs}.get(stage)
    return replace(req, stage=stage, model=Path(model), out=Path(req.out) / stage, pairs=pairs)


def run_progressive(req: StageRequest, on_step=None) -> list[StageResult]:
    """nli → caption → mbeir under `req.out/<stage>`, each from the previous stage's merged model."""
    results = []
    init = Path(req.model)
    for stage in PROGRESSIVE_CHAIN:
        result = run_stage(stage_request(req, stage, init), on_step=on_step)
        results.append(result)
        init = result.out
    return results


def train_progressive(
    data: Path,
    nli_pairs: Path,
    caption_pairs: Path,
    model: Path,
    out: Path,
    profile: str = "paper",
    overrides: list[str] | None = None,
    config_file: Path | None = None,
    force: bool = False,
    device: str | None = None,
) -> dict[str, Path]:
    """Python entry point of the chain (used by `umarvel demo`): {stage: its merged model folder}."""
    req = StageRequest(
        stage="progressive",
        model=Path(model),
        out=Path(out),
        data=Path(data),
        profile=profile,
        config_file=config_file,
        sets=list(overrides or []),
        force=force,
        device=device,
        nli_pairs=Path(nli_pairs),
        caption_pairs=Path(caption_pairs),
    )
    return {r.stage: r.out / MODEL_DIR for r in run_progressive(req)}


__all__ = ["run_progressive", "stage_request", "train_progressive"]
