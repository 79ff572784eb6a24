"""Objectives: the registry, InfoNCE's batch and loss, and the trainer running a loss it does not know."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tests.training.conftest import toy_config
from tests.training.toy import ToyEncoder
from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.infonce import info_nce_loss
from umarvel_cli.training.config import STAGE_OBJECTIVES, STAGES
from umarvel_cli.training.data import PairsSet, TrainExample
from umarvel_cli.training.objectives import (
    OBJECTIVES,
    InBatchInfoNCE,
    Objective,
    ObjectiveBatch,
    ObjectiveOutput,
    Side,
    build_objective,
    rank_view,
)
from umarvel_cli.training.trainer import Trainer

CPU = torch.device("cpu")


def test_every_stage_names_a_registered_objective():
    assert set(STAGE_OBJECTIVES) == set(STAGES)
    assert set(STAGE_OBJECTIVES.values()) <= set(OBJECTIVES)
    cfg = toy_config(bidirectional=True, mask_false_negatives=False, loss_impl="eager")
    objective = build_objective("infonce", cfg)
    assert isinstance(objective, InBatchInfoNCE)
    assert (objective.bidirectional, objective.mask_false_negatives, objective.impl) == (True, False, "eager")
    assert objective.gathered_sides == ("positive", "negatives", "query")
    assert build_objective("infonce", toy_config()).gathered_sides == ("positive", "negatives")
    with pytest.raises(UmarvelError, match="unknown objective 'listwise'"):
        build_objective("listwise", cfg)


def _examples(pairs_dir) -> list[TrainExample]:
    data = PairsSet(pairs_dir, "nli", hard_negatives=1)
    return [data.example(i, 0) for i in range(6)]


def test_infonce_batch_names_its_sides_and_ids(pairs_dir):
    examples = _examples(pairs_dir)
    batch = InBatchInfoNCE().batch(examples, CPU)
    assert [(s.name, s.role, len(s.records)) for s in batch.sides] == [
        ("query", "query", 6),
        ("positive", "candidate", 6),
        ("negatives", "candidate", 6),
    ]
    assert batch.sides[1].records[0].text == examples[0].positive.text
    assert batch.targets["pos_ids"].shape == (6,) and batch.targets["neg_ids"].shape == (6,)
    assert batch.targets["query_pos_ids"].shape == (6, 1)
    # a query's positive id is the id of its positive candidate
    assert torch.equal(batch.targets["query_pos_ids"][:, 0], batch.targets["pos_ids"])


def test_infonce_loss_is_both_directions_over_the_batch(pairs_dir):
    """One process: the loss is q->[positives; negatives] plus positives->queries, each a mean."""
    objective = InBatchInfoNCE(bidirectional=True, mask_false_negatives=True, impl="plain")
    batch = objective.batch(_examples(pairs_dir), CPU)
    g = torch.Generator().manual_seed(0)
    q, p, n = (F.normalize(torch.randn(6, 8, generator=g), dim=-1) for _ in range(3))
    view = rank_view(objective, batch, [q, p, n])
    assert (view.offset, view.total) == (0, 6)
    out = objective.loss(view, torch.tensor(0.05))
    labels = torch.arange(6)
    q2c = info_nce_loss(q, torch.cat([p, n]), labels, 0.05, impl="plain")
    c2q = info_nce_loss(p, q, labels, 0.05, impl="plain")
    torch.testing.assert_close(out.loss, q2c + c2q)
    torch.testing.assert_close(out.logs["loss_q2c"], q2c)
    torch.testing.assert_close(out.logs["loss_c2q"], c2q)
    assert "loss_q2c" not in InBatchInfoNCE().loss(rank_view(InBatchInfoNCE(), batch, [q, p, n]), 0.05).logs


class AlignOnly(Objective):
    """A loss the trainer has never heard of: pull each query onto its positive (no negatives)."""

    name = "align"

    @classmethod
    def from_config(cls, cfg):
        return cls()

    def batch(self, examples, device):
        return ObjectiveBatch(
            [Side("query", [e.query for e in examples], "query"),
             Side("positive", [e.positive for e in examples], "candidate")]
        )  # fmt: skip

    def loss(self, view, temperature):
        cos = (view.local["query"] * view.local["positive"]).sum(-1)
        return ObjectiveOutput((1 - cos).sum() / view.total, {"mean_cos": cos.detach().sum() / view.total})


def test_trainer_runs_the_objective_it_is_given(pairs_dir, tmp_path):
    cfg = toy_config(epochs=2, hard_negatives=1)
    trainer = Trainer(ToyEncoder(dropout=0.0), PairsSet(pairs_dir, "nli", 1), cfg, AlignOnly(), tmp_path, CPU)
    trainer.fit()
    rows = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    for r in rows:  # the logged value comes from the objective, summed like the loss
        assert r["loss"] == pytest.approx(1 - r["mean_cos"], abs=1e-6)
    assert rows[-1]["mean_cos"] > rows[0]["mean_cos"] + 0.1
