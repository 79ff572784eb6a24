"""Training objectives by name: the trainer runs whichever one a stage names.

Add one as one file (a subclass of `Objective`, see `base.py`) and one entry in `OBJECTIVES`.
"""

from __future__ import annotations

from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.objectives.base import (
    Objective,
    ObjectiveBatch,
    ObjectiveOutput,
    RankView,
    Side,
    rank_view,
)
from umarvel_cli.training.objectives.distill import DistillKL
from umarvel_cli.training.objectives.hardneg import HardNegativeInfoNCE
from umarvel_cli.training.objectives.infonce import InBatchInfoNCE
from umarvel_cli.training.objectives.rerank import RerankAnswerCE

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (InBatchInfoNCE, HardNegativeInfoNCE, DistillKL, RerankAnswerCE)
}


def build_objective(name: str, cfg: TrainConfig) -> Objective:
    """The objective registered as `name`, set up from the stage's config."""
    if name not in OBJECTIVES:
        raise UmarvelError(f"unknown objective {name!r}", field="objective", expected=" | ".join(OBJECTIVES))
    return OBJECTIVES[name].from_config(cfg)


__all__ = [
    "OBJECTIVES",
    "DistillKL",
    "HardNegativeInfoNCE",
    "InBatchInfoNCE",
    "Objective",
    "ObjectiveBatch",
    "ObjectiveOutput",
    "RankView",
    "RerankAnswerCE",
    "Side",
    "build_objective",
    "rank_view",
]
