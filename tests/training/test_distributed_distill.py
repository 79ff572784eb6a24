"""The distill objective under two gloo processes equals one process holding the whole batch
(KL only: nothing gathered; with the InfoNCE term: positives and list candidates gathered)."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from umarvel_cli import distributed as D
from umarvel_cli.data.records import Record
from umarvel_cli.training.distill_data import DistillExample
from umarvel_cli.training.objectives import rank_view
from umarvel_cli.training.objectives.distill import DistillKL

TAU = 0.1
GRAD_TOL = {"rtol": 1e-5, "atol": 1e-5}
WEIGHTS = (0.0, 0.7)  # KL only, and KL + 0.7 x InfoNCE


def _examples() -> list[DistillExample]:
    """Six queries, lists of 3 or 4 drawn from 10 candidates (shared across queries), positives inside."""
    g = torch.Generator().manual_seed(3)
    out = []
    for i in range(6):
        k = 3 + i % 2
        dids = [f"c{int(j)}" for j in torch.randperm(10, generator=g)[:k]]
        scores = torch.rand(k, generator=g).tolist()
        out.append(
            DistillExample(Record(id=f"q{i}", text=f"q{i}"), Record(id=dids[0], text=dids[0]),
                           [Record(id=d, text=d) for d in dids], dids[0], dids, [dids[0]], teacher_scores=scores)
        )  # fmt: skip
    return out


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))


def _features(record: Record) -> torch.Tensor:
    seed = int(record.id[1:]) + (100 if record.id.startswith("q") else 0)
    return torch.randn(5, generator=torch.Generator().manual_seed(seed))


def _loss(model, examples, weight: float) -> torch.Tensor:
    obj = DistillKL(weight, impl="plain")
    batch = obj.batch(examples, torch.device("cpu"))
    outputs = [
        F.normalize(model(torch.stack([_features(r) for r in s.records])), dim=-1) for s in batch.sides
    ]
    return obj.loss(rank_view(obj, batch, outputs), torch.tensor(TAU)).loss


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    results = {}
    try:
        for weight in WEIGHTS:
            model = _model()
            loss = _loss(model, _examples()[rank * 3 : rank * 3 + 3], weight)
            loss.backward()
            D.all_reduce_gradients(model.parameters())
            results[weight] = (D.all_reduce_sum(loss.item()), [p.grad for p in model.parameters()])
        if rank == 0:
            torch.save(results, out)
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_process(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo_distill")
    mp.spawn(_worker, args=(2, str(tmp / "init"), str(tmp / "out.pt")), nprocs=2, join=True)
    return torch.load(tmp / "out.pt")


@pytest.mark.parametrize("weight", WEIGHTS)
def test_two_processes_match_one(two_process, weight):
    model = _model()
    loss = _loss(model, _examples(), weight)
    loss.backward()
    total, grads = two_process[weight]
    assert total == pytest.approx(loss.item(), rel=1e-5)
    for got, want in zip(grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want, **GRAD_TOL)
