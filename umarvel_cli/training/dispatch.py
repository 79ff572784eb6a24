"""`umarvel train`: one entry point that runs (or, dry, describes) what a stage name stands for.

A stage name maps to how it runs: nli, caption, mbeir and hardneg are single stages (`stages.py`),
progressive the chain nli → caption → mbeir (`progressive.py`); distill (`umarvel distill`) and
rerank (`umarvel rerank train`) are single stages too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from umarvel_cli import distributed as D
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.config import STAGES
from umarvel_cli.training.progressive import run_progressive
from umarvel_cli.training.stages import NEGATIVE_STAGES, StageRequest, StageResult, run_stage

# How each `--stage` name runs (given a per-step sink or None); its dry run is `dry_run.describe_request`.
StageRunner = Callable[[StageRequest, Any], list[StageResult]]
STAGE_KINDS: dict[str, StageRunner] = {
    **dict.fromkeys(STAGES, lambda req, on_step: [run_stage(req, on_step=on_step)]),
    "progressive": lambda req, on_step: run_progressive(req, on_step=on_step),
}


def train(req: StageRequest, dry_run: bool = False, report_to: str = "none") -> dict[str, Any]:
    """`umarvel train`: run the stage `req.stage` names, or (dry run) describe it.

    Under torchrun the process group is joined here, so the same command line scales out unchanged.
    """
    run = STAGE_KINDS.get(req.stage)
    if run is None:
        raise UmarvelError(f"unknown stage {req.stage!r}", field="--stage", expected=" | ".join(STAGE_KINDS))
    if req.negatives is not None and req.stage not in NEGATIVE_STAGES:
        raise UmarvelError(
            f"--negatives is for --stage hardneg, not {req.stage}",
            field="--negatives",
            expected="--stage hardneg",
        )
    D.init_from_env()
    if dry_run:
        from umarvel_cli.training.dry_run import describe_request

        return {"dry_run": True, "stages": describe_request(req)}
    sink = None
    if report_to == "tensorboard":
        from umarvel_cli.training.tensorboard import TensorBoardSink

        sink = TensorBoardSink(Path(req.out) / "tensorboard")
    try:
        results = run(req, sink)
    finally:
        if sink is not None:
            sink.close()
    if not D.is_main():  # under torchrun one process reports
        results = []
    return {
        "dry_run": False,
        "stages": [
            {"stage": r.stage, "status": r.status, "out": str(r.out), "model": str(r.model), **r.extra}
            for r in results
        ],
    }
