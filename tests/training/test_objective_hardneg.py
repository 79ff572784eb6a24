"""The hardneg objective against the trainer's Objective interface."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.hard_negative import hard_negative_loss
from umarvel_cli.training.data import TrainExample
from umarvel_cli.training.objectives.base import RankView
from umarvel_cli.training.objectives.hardneg import HardNegativeInfoNCE
from umarvel_cli.training.objectives.infonce import InBatchInfoNCE

K, B, D = 2, 3, 8


def _examples(k=K):
    return [
        TrainExample(
            query=Record(id=f"q{i}", text=f"query {i}"),
            positive=Record(id=f"p{i}", text=f"pos {i}"),
            negatives=[Record(id=f"n{i}{j}", text=f"neg {i}{j}") for j in range(k)],
            pos_key=f"c:p{i}",
            neg_keys=[
                f"c:p{(i + 1) % B}" if j == 0 else f"c:n{i}{j}" for j in range(k)
            ],  # one duplicates a positive
            query_pos_keys=[f"c:p{i}"],
        )
        for i in range(B)
    ]


def _view(objective, batch):
    g = torch.Generator().manual_seed(0)
    out = {s.name: F.normalize(torch.randn(len(s.records), D, generator=g), dim=-1) for s in batch.sides}
    local = {**out, **batch.targets}
    world = {name: local[name] for name in (*objective.gathered_sides, *objective.gathered_targets)}
    return RankView(local, world, offset=0, total=B)


def test_single_process_loss_is_the_in_batch_loss_with_hard_negatives_and_logs_own_negatives():
    obj = HardNegativeInfoNCE(K)
    batch = obj.batch(_examples(), torch.device("cpu"))
    view = _view(obj, batch)
    tau = torch.tensor(0.05)
    out = obj.loss(view, tau)
    same = InBatchInfoNCE(False, True, "auto").loss(view, tau).loss
    torch.testing.assert_close(out.loss, same)
    w = view.world
    direct = hard_negative_loss(
        w["query"] if "query" in w else view.local["query"], w["positive"], w["negatives"].reshape(B, K, D),
        torch.arange(B), tau, cand_keys=torch.cat([w["pos_ids"], w["neg_ids"]]),
        query_pos_keys=view.local["query_pos_ids"],
    )  # fmt: skip
    torch.testing.assert_close(out.loss, direct)
    assert set(out.logs) == {"hard_margin", "hard_beaten"} and 0 <= float(out.logs["hard_beaten"]) <= 1


def test_examples_must_bring_exactly_k_negatives():
    with pytest.raises(UmarvelError, match="has 1 hard negatives"):
        HardNegativeInfoNCE(K).batch(_examples(k=1), torch.device("cpu"))
