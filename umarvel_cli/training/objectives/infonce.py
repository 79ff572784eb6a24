"""The contrastive objective of one (micro-)batch: InfoNCE over the global batch, both directions.

Layout: every rank embeds its local queries q [B, d], positives p [B, d] and hard negatives
n [M, d]; candidates are the gathered positives of all ranks followed by the gathered hard
negatives, so each query sees every in-batch positive and every hard negative of the global batch.
Query i's label is its global row. False negatives (a candidate whose content key is one of the
query's positives: duplicated queries, shared positives, other queries' negatives that are mine)
are excluded by id. The optional reverse direction (caption stage) scores each positive against
all gathered queries, where query k is labelled by the key of its positive.

The returned value is this rank's share of the global mean: the sum over local rows divided by the
global number of rows (see `distributed` for why that makes gradients exact under torchrun).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from umarvel_cli import distributed as D
from umarvel_cli.losses.ids import content_ids, positive_id_matrix
from umarvel_cli.losses.infonce import info_nce_loss
from umarvel_cli.training.data import TrainExample


@dataclass
class BatchKeys:
    """int64 content ids of one local batch (see module docstring)."""

    pos_ids: torch.Tensor  # [B]
    neg_ids: torch.Tensor  # [M]
    query_pos_ids: torch.Tensor  # [B, P], pad -1

    @classmethod
    def of(cls, examples: list[TrainExample], device: torch.device) -> BatchKeys:
        return cls(
            pos_ids=content_ids([e.pos_key for e in examples], device=device),
            neg_ids=content_ids([k for e in examples for k in e.neg_keys], device=device),
            query_pos_ids=positive_id_matrix([e.query_pos_keys for e in examples], device=device),
        )


def clamped_temperature(log_temperature: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """exp(log τ) within [low, high] (B10: log-parameterised and bounded)."""
    return log_temperature.float().exp().clamp(low, high)


def contrastive_loss(
    q: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    keys: BatchKeys,
    temperature: torch.Tensor | float,
    bidirectional: bool = False,
    mask_false_negatives: bool = True,
    impl: str = "auto",
) -> torch.Tensor:
    """This rank's share of the global-batch InfoNCE (q→c, plus c→q when `bidirectional`)."""
    q, pos, neg = q.float(), pos.float(), neg.float()
    offset, total = D.shard_offset(q.shape[0], q.device)
    labels = torch.arange(q.shape[0], device=q.device) + offset
    cands = torch.cat([D.gather_with_grad(pos), D.gather_with_grad(neg)])
    all_pos_ids = D.gather_no_grad(keys.pos_ids)
    cand_ids = torch.cat([all_pos_ids, D.gather_no_grad(keys.neg_ids)])
    exclude = mask_false_negatives
    loss = info_nce_loss(
        q,
        cands,
        labels,
        temperature,
        cand_ids=cand_ids if exclude else None,
        query_pos_ids=keys.query_pos_ids if exclude else None,
        reduction="sum",
        impl=impl,
    )
    if bidirectional:
        loss = loss + info_nce_loss(
            pos,
            D.gather_with_grad(q),
            labels,
            temperature,
            cand_ids=all_pos_ids if exclude else None,
            query_pos_ids=keys.pos_ids[:, None] if exclude else None,
            reduction="sum",
            impl=impl,
        )
    return loss / total
