"""The rerank objective under two gloo processes with unequal shares equals one process holding the
whole batch: each rank's loss is its share of the global mean over prompts, so summed losses and
all-reduced gradients match (a toy model with the reranker's `encode_pairs`/`collator`/`answer_loss`)."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from umarvel_cli import distributed as D
from umarvel_cli.data.records import Record
from umarvel_cli.training.data import TrainExample
from umarvel_cli.training.objectives.rerank import RerankAnswerCE

SPLIT = 2  # rank 0 holds 2 examples (4 prompts), rank 1 the other 3 (6 prompts)


class ToyReranker(torch.nn.Module):
    """Features of (query, candidate) -> logits over a 3-token vocabulary; "Yes" = 0, "No" = 1."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

    def encode_pairs(self, pairs):
        def feats(r: Record) -> torch.Tensor:
            return torch.randn(3, generator=torch.Generator().manual_seed(int(r.id[1:])))

        return [torch.cat([feats(q), feats(c)]) for q, c in pairs]

    def collator(self, items):
        return {"x": torch.stack(items)}

    def answer_loss(self, batch, positive):
        target = torch.where(positive, 0, 1)
        return F.cross_entropy(self.head(batch["x"]), target)


def _examples() -> list[TrainExample]:
    return [
        TrainExample(Record(f"q{i}", "q"), Record(f"p{10 + i}", "p"), [Record(f"n{20 + i}", "n")])
        for i in range(5)
    ]


def _loss(model: ToyReranker, examples: list[TrainExample]) -> torch.Tensor:
    objective = RerankAnswerCE()
    return objective.model_loss(model, objective.batch(examples, torch.device("cpu"))).loss


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        model = ToyReranker()
        mine = _examples()[:SPLIT] if rank == 0 else _examples()[SPLIT:]
        loss = _loss(model, mine)
        loss.backward()
        D.all_reduce_gradients(list(model.parameters()))
        if rank == 0:
            torch.save((D.all_reduce_sum(loss.item()), [p.grad for p in model.parameters()]), out)
        else:
            D.all_reduce_sum(loss.item())
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_process(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo_rerank")
    mp.spawn(_worker, args=(2, str(tmp / "init"), str(tmp / "out.pt")), nprocs=2, join=True)
    return torch.load(tmp / "out.pt")


def test_two_processes_with_unequal_shares_match_one(two_process):
    model = ToyReranker()
    loss = _loss(model, _examples())
    loss.backward()
    total, grads = two_process
    assert total == pytest.approx(float(loss.detach()), rel=1e-5)
    for got, want in zip(grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_batch_pairs_each_query_with_its_positive_then_its_negative():
    batch = RerankAnswerCE().batch(_examples()[:2], torch.device("cpu"))
    assert [(q.id, c.id) for q, c in batch.pairs] == [
        ("q0", "p10"),
        ("q0", "n20"),
        ("q1", "p11"),
        ("q1", "n21"),
    ]
    assert batch.targets["positive"].tolist() == [True, False, True, False] and batch.sides == []
