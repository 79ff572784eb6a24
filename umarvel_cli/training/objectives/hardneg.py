"""The hard-negative stage's objective: "in-batch + hard" InfoNCE over mined negatives (spec 3.2).

Every example brings its query, one positive and exactly k mined negatives (`HardNegativeSet`), so
every rank gathers blocks of one shape: row i scores every gathered positive and every gathered hard
negative, its own positives and same-content candidates masked by content key, with the trainer's
learnable temperature. The math is `InBatchInfoNCE`'s with hard negatives; this objective adds the
fixed-k check and logs how the positive fares against the row's own negatives (the margin and the
share of rows where it beats all k), which is what mining was for.
"""

from __future__ import annotations

import torch

from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.hard_negative import hard_negative_loss, own_negative_stats
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import TrainExample
from umarvel_cli.training.objectives.base import Objective, ObjectiveBatch, ObjectiveOutput, RankView
from umarvel_cli.training.objectives.infonce import InBatchInfoNCE


class HardNegativeInfoNCE(Objective):
    name = "hardneg"
    gathered_sides = ("positive", "negatives")
    gathered_targets = ("pos_ids", "neg_ids")

    def __init__(self, hard_negatives: int, mask_false_negatives: bool = True, impl: str = "auto") -> None:
        if hard_negatives < 1:
            raise UmarvelError(
                "the hard-negative objective needs hard_negatives >= 1", field="hard_negatives"
            )
        self.k = hard_negatives
        self.mask_false_negatives = mask_false_negatives
        self.impl = impl
        self._sides = InBatchInfoNCE(False, mask_false_negatives, impl)

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> HardNegativeInfoNCE:
        return cls(cfg.hard_negatives, cfg.mask_false_negatives, cfg.loss_impl)

    def batch(self, examples: list[TrainExample], device: torch.device) -> ObjectiveBatch:
        """The in-batch sides and ids (query, positive, negatives), after checking k per example."""
        wrong = next((e for e in examples if len(e.negatives) != self.k), None)
        if wrong is not None:
            raise UmarvelError(
                f"example {wrong.query.id!r} has {len(wrong.negatives)} hard negatives",
                field="hard_negatives",
                expected=f"exactly {self.k} per example (HardNegativeSet pads short rows)",
            )
        return self._sides.batch(examples, device)

    def loss(self, view: RankView, temperature: torch.Tensor) -> ObjectiveOutput:
        q, world = view.local["query"], view.world
        labels = torch.arange(q.shape[0], device=q.device) + view.offset
        negatives = world["negatives"].reshape(world["positive"].shape[0], self.k, -1)
        exclude = self.mask_false_negatives
        total = hard_negative_loss(
            q,
            world["positive"],
            negatives,
            labels,
            temperature,
            cand_keys=torch.cat([world["pos_ids"], world["neg_ids"]]) if exclude else None,
            query_pos_keys=view.local["query_pos_ids"] if exclude else None,
            reduction="sum",
            impl=self.impl,
        )
        margin, beats = own_negative_stats(q, world["positive"], negatives, labels, view.offset)
        logs = {"hard_margin": margin.sum() / view.total, "hard_beaten": beats.sum() / view.total}
        return ObjectiveOutput(total / view.total, logs)
