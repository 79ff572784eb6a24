"""The differentiable all-gather: a 2-process gloo run equals one process holding the whole batch."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from umarvel_cli import distributed as D
from umarvel_cli.losses.ids import content_ids, positive_id_matrix
from umarvel_cli.training.objectives import InBatchInfoNCE, ObjectiveBatch, rank_view

TAU = 0.05
# fp32 sums in another order (two shards, then the all-reduce): gradients of magnitude ~10 differ
# from the one-process ones by a few 1e-6 (measured up to 5.7e-6)
GRAD_TOL = {"rtol": 1e-5, "atol": 1e-5}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)


def _local_loss(model: torch.nn.Module, xq: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
    """Both directions: local rows against gathered columns, summed and divided by the global count."""
    q = F.normalize(model(xq), dim=-1)
    c = F.normalize(model(xc), dim=-1)
    all_q, all_c = D.gather_with_grad(q), D.gather_with_grad(c)
    offset, total = D.shard_offset(len(q))
    labels = torch.arange(len(q)) + offset
    q2c = F.cross_entropy(q @ all_c.T / TAU, labels, reduction="sum")
    c2q = F.cross_entropy(c @ all_q.T / TAU, labels, reduction="sum")
    return (q2c + c2q) / total


SPLITS = ([4, 4], [3, 5])  # equal and uneven shards


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    """Every scenario in one process group (one spawn keeps the test fast)."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    results = {}
    try:
        xq, xc = _data()
        for splits in SPLITS:
            model = _model()
            start = sum(splits[:rank])
            loss = _local_loss(model, xq[start : start + splits[rank]], xc[start : start + splits[rank]])
            loss.backward()
            D.all_reduce_gradients(model.parameters())
            results[tuple(splits)] = (D.all_reduce_sum(loss.item()), [p.grad for p in model.parameters()])
        model = _model()
        loss = _contrastive(model, rank * 4, rank * 4 + 4)
        loss.backward()
        D.all_reduce_gradients(model.parameters())
        results["contrastive"] = (D.all_reduce_sum(loss.item()), [p.grad for p in model.parameters()])
        if rank == 0:
            torch.save(results, out)
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo")
    out = tmp / "results.pt"
    mp.spawn(_worker, args=(2, str(tmp / "init"), str(out)), nprocs=2, join=True)
    return torch.load(out)


def _single() -> tuple[float, list[torch.Tensor]]:
    model = _model()
    xq, xc = _data()
    loss = _local_loss(model, xq, xc)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def test_single_process_helpers_are_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert D.gather_with_grad(x) is x
    assert D.shard_offset(3) == (0, 3)
    assert D.world_size() == 1 and D.rank() == 0 and D.is_main()


def test_two_process_gather_matches_one_process(two_process_results):
    ref_loss, ref_grads = _single()
    assert max(g.abs().max().item() for g in ref_grads) > 1e-3  # gradients are not trivially zero
    for splits in SPLITS:
        loss, grads = two_process_results[tuple(splits)]
        assert abs(loss - ref_loss) < 1e-5, (splits, loss, ref_loss)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r, **GRAD_TOL)


def _batch(start: int, stop: int) -> ObjectiveBatch:
    """Content ids with a duplicated positive (rows 1 and 5) so the false-negative mask is exercised."""
    pos = [f"d{i if i != 5 else 1}" for i in range(8)]
    neg = [f"n{i}" for i in range(8)]
    qpos = [[p] for p in pos]
    targets = {
        "pos_ids": content_ids(pos[start:stop]),
        "neg_ids": content_ids(neg[start:stop]),
        "query_pos_ids": positive_id_matrix(qpos[start:stop]),
    }
    objective = InBatchInfoNCE(bidirectional=True, impl="plain")
    sides = objective.batch([], torch.device("cpu")).sides  # names and roles; the records are not used
    return ObjectiveBatch(sides, targets)


def _contrastive(model, start: int, stop: int) -> torch.Tensor:
    """The InfoNCE objective as the trainer runs it: this rank's rows, the declared names gathered."""
    xq, xc = _data()
    xn = xc.flip(0) * 0.5
    q, p, n = (F.normalize(model(x[start:stop]), dim=-1) for x in (xq, xc, xn))
    objective = InBatchInfoNCE(bidirectional=True, impl="plain")
    return objective.loss(rank_view(objective, _batch(start, stop), [q, p, n]), torch.tensor(TAU)).loss


def test_two_process_contrastive_loss_with_hard_negatives_and_masks(two_process_results):
    model = _model()
    loss = _contrastive(model, 0, 8)
    loss.backward()
    got_loss, grads = two_process_results["contrastive"]
    assert abs(got_loss - loss.item()) < 1e-5
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, **GRAD_TOL)
