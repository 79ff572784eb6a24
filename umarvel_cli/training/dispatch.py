"""`umarvel train`: one entry point that runs (or, dry, describes) what a stage name stands for.

A stage name maps to how it runs: nli, caption and mbeir are single stages (`stages.py`),
progressive the chain of the three (`progressive.py`). The next stages (hard negatives,
distillation, the reranker) are one entry each here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from umarvel_cli import distributed as D
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.config import STAGES
from umarvel_cli.training.progressive import describe_progressive, run_progressive
from umarvel_cli.training.stages import StageRequest, StageResult, describe_stage, run_stage


@dataclass(frozen=True)
class StageKind:
    """How a `--stage` name runs: its results, or (dry run) the description of each stage."""

    run: Callable[[StageRequest], list[StageResult]]
    describe: Callable[[StageRequest], list[dict[str, Any]]]


SINGLE = StageKind(run=lambda req: [run_stage(req)], describe=lambda req: [describe_stage(req)])
STAGE_KINDS: dict[str, StageKind] = {
    **dict.fromkeys(STAGES, SINGLE),
    "progressive": StageKind(run=run_progressive, describe=describe_progressive),
}


def train(req: StageRequest, dry_run: bool = False) -> dict[str, Any]:
    """`umarvel train`: run the stage `req.stage` names, or (dry run) describe it.

    Under torchrun the process group is joined here, so the same command line scales out unchanged.
    """
    kind = STAGE_KINDS.get(req.stage)
    if kind is None:
        raise UmarvelError(f"unknown stage {req.stage!r}", field="--stage", expected=" | ".join(STAGE_KINDS))
    D.init_from_env()
    if dry_run:
        return {"dry_run": True, "stages": kind.describe(req)}
    results = kind.run(req)
    if not D.is_main():  # under torchrun one process reports
        results = []
    return {
        "dry_run": False,
        "stages": [
            {"stage": r.stage, "status": r.status, "out": str(r.out), "model": str(r.model), **r.extra}
            for r in results
        ],
    }
