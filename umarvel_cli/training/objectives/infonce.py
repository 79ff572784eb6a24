"""In-batch InfoNCE over the global batch, in both directions when asked: the first objective.

Layout: every rank embeds its local queries q [B, d], positives p [B, d] and hard negatives
n [M, d]; candidates are the gathered positives of all ranks followed by the gathered hard
negatives, so each query sees every in-batch positive and every hard negative of the global batch.
Query i's label is its global row. False negatives (a candidate whose content key is one of the
query's positives: duplicated queries, shared positives, other queries' negatives that are mine)
are excluded by id. The optional reverse direction (caption stage) scores each positive against
all gathered queries, where query k is labelled by the key of its positive.
"""

from __future__ import annotations

import torch

from umarvel_cli.losses.ids import content_ids, positive_id_matrix
from umarvel_cli.losses.infonce import info_nce_loss
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import TrainExample
from umarvel_cli.training.objectives.base import (
    Objective,
    ObjectiveBatch,
    ObjectiveOutput,
    RankView,
    Side,
)


class InBatchInfoNCE(Objective):
    name = "infonce"
    gathered_targets = ("pos_ids", "neg_ids")

    def __init__(self, bidirectional: bool = False, mask_false_negatives: bool = True, impl: str = "auto"):
        self.bidirectional = bidirectional
        self.mask_false_negatives = mask_false_negatives
        self.impl = impl
        self.gathered_sides = ("positive", "negatives") + (("query",) if bidirectional else ())

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> InBatchInfoNCE:
        return cls(cfg.bidirectional, cfg.mask_false_negatives, cfg.loss_impl)

    def batch(self, examples: list[TrainExample], device: torch.device) -> ObjectiveBatch:
        """Queries, positives, hard negatives; int64 content ids of positives [B], negatives [M] and
        of every query's positives [B, P] (pad -1)."""
        sides = [
            Side("query", [e.query for e in examples], "query"),
            Side("positive", [e.positive for e in examples], "candidate"),
            Side("negatives", [n for e in examples for n in e.negatives], "candidate"),
        ]
        targets = {
            "pos_ids": content_ids([e.pos_key for e in examples], device=device),
            "neg_ids": content_ids([k for e in examples for k in e.neg_keys], device=device),
            "query_pos_ids": positive_id_matrix([e.query_pos_keys for e in examples], device=device),
        }
        return ObjectiveBatch(sides, targets)

    def loss(self, view: RankView, temperature: torch.Tensor) -> ObjectiveOutput:
        """This rank's share of the global-batch InfoNCE (q→c, plus c→q when bidirectional)."""
        q, pos, world = view.local["query"], view.local["positive"], view.world
        labels = torch.arange(q.shape[0], device=q.device) + view.offset
        cands = torch.cat([world["positive"], world["negatives"]])
        cand_ids = torch.cat([world["pos_ids"], world["neg_ids"]])
        exclude = self.mask_false_negatives
        q2c = info_nce_loss(
            q,
            cands,
            labels,
            temperature,
            cand_ids=cand_ids if exclude else None,
            query_pos_ids=view.local["query_pos_ids"] if exclude else None,
            reduction="sum",
            impl=self.impl,
        )
        if not self.bidirectional:
            return ObjectiveOutput(q2c / view.total)
        c2q = info_nce_loss(
            pos,
            world["query"],
            labels,
            temperature,
            cand_ids=world["pos_ids"] if exclude else None,
            query_pos_ids=view.local["pos_ids"][:, None] if exclude else None,
            reduction="sum",
            impl=self.impl,
        )
        logs = {"loss_q2c": q2c.detach() / view.total, "loss_c2q": c2q.detach() / view.total}
        return ObjectiveOutput((q2c + c2q) / view.total, logs)
