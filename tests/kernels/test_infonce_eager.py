"""The eager InfoNCE (gradients in the forward, row blocks) against the plain loss and the literal rule."""

from __future__ import annotations

import pytest
import torch

from kernels.infonce_eager import info_nce_rows_eager
from tests.kernels.conftest import ON_GPU
from tests.losses.cases import infonce_case, loss_and_grads
from umarvel_cli.losses.infonce import info_nce_loss


def eager(rows, weights=None):
    def fn(q, c, labels, tau, **kw):
        out = info_nce_rows_eager(q, c, labels, tau, rows=rows, **kw)
        return out.mean() if weights is None else (out * weights).sum()

    return fn


def plain(weights=None):
    def fn(q, c, labels, tau, **kw):
        if weights is None:
            return info_nce_loss(q.float(), c.float(), labels, tau, impl="plain", **kw)
        out = info_nce_loss(q.float(), c.float(), labels, tau, impl="plain", reduction="none", **kw)
        return (out * weights).sum()

    return fn


def assert_same(got, ref, **tol):
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a.float(), b.float(), msg=name, **tol)


@pytest.mark.parametrize("with_ids", [False, True])
@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_matches_plain_value_and_grads(with_ids, rows):
    # rows=7 leaves a partial last block (37 = 5·7 + 2); rows=1000 is one block
    case = infonce_case(37, 150, 24, seed=21)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids} if with_ids else {}
    assert_same(loss_and_grads(eager(rows), case, **kw), loss_and_grads(plain(), case, **kw),
                rtol=1e-5, atol=1e-6)  # fmt: skip


def test_unequal_row_weights_recompute_from_the_saved_lse():
    # a non-uniform upstream gradient cannot rescale the forward's gradients: the backward recomputes
    case = infonce_case(23, 60, 16, seed=22)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    w = torch.rand(23, generator=torch.Generator().manual_seed(0))
    assert_same(loss_and_grads(eager(5, w), case, **kw), loss_and_grads(plain(w), case, **kw),
                rtol=1e-5, atol=1e-6)  # fmt: skip


def test_bf16_close_to_fp32_plain():
    case = infonce_case(40, 96, 32, dtype=torch.bfloat16, seed=23)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    got = loss_and_grads(eager(6), case, **kw)
    assert got[1].dtype == torch.bfloat16 and got[2].dtype == torch.bfloat16
    assert_same(got, loss_and_grads(plain(), case, **kw), rtol=3e-2, atol=3e-2)


def test_all_excluded_but_positive_and_one_candidate():
    case = infonce_case(5, 12, 8, seed=24)
    ids, qpos = torch.zeros(12, dtype=torch.int64), torch.zeros(5, 1, dtype=torch.int64)
    loss, dq, dc, dtau = loss_and_grads(eager(2), case, cand_ids=ids, query_pos_ids=qpos)
    assert float(loss) == 0.0 and float(dq.abs().max()) == 0.0 and float(dc.abs().max()) == 0.0
    assert float(dtau) == 0.0
    one = infonce_case(4, 1, 8, seed=25)
    loss, dq, _, _ = loss_and_grads(eager(3), one)
    assert float(loss) == 0.0 and float(dq.abs().max()) == 0.0


def test_without_grad_only_the_loss():
    case = infonce_case(10, 30, 8, seed=26)
    with torch.no_grad():
        got = info_nce_rows_eager(case.q, case.c, case.labels, case.tau, rows=4)
    ref = info_nce_loss(case.q, case.c, case.labels, case.tau, impl="plain", reduction="none")
    assert not got.requires_grad
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_public_impl_and_gradcheck_float64():
    case = infonce_case(6, 11, 5, dtype=torch.float64, seed=27)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    got = info_nce_loss(case.q, case.c, case.labels, 0.2, impl="eager", reduction="none", **kw)
    ref = info_nce_loss(case.q, case.c, case.labels, 0.2, impl="plain", reduction="none", **kw)
    torch.testing.assert_close(got, ref.to(got.dtype))
    q, c = case.q.clone().requires_grad_(True), case.c.clone().requires_grad_(True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def fn(q, c, tau):
        return info_nce_rows_eager(q, c, case.labels, tau, rows=4, **kw)

    assert torch.autograd.gradcheck(fn, (q, c, tau))
    # uniform upstream gradient: the first backward hands over the forward's gradients, a repeated
    # one recomputes them, so repeats may differ in the last bits
    assert torch.autograd.gradcheck(lambda q, c, tau: fn(q, c, tau).sum(), (q, c, tau), nondet_tol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(
    not ON_GPU, reason="cuBLAS bf16 block accumulation: UMARVEL_TEST_ON_GPU=1 on a CUDA machine"
)
def test_cuda_bf16_ragged_blocks(kernel_device):
    case = infonce_case(1000, 3001, 1537, dtype=torch.bfloat16, seed=28, device=kernel_device)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    assert_same(loss_and_grads(eager(96), case, **kw), loss_and_grads(plain(), case, **kw),
                rtol=5e-2, atol=2e-2)  # fmt: skip


def test_bf16_gradients_do_not_degrade_with_many_row_blocks():
    # dc sums every row block's product: it accumulates in fp32, so 48 blocks are about as exact as one
    # (summed in bf16 the error was 3x that of one block)
    case = infonce_case(1024, 2048, 64, dtype=torch.bfloat16, seed=29)
    exact = infonce_case(1024, 2048, 64, seed=29)
    exact.q, exact.c, exact.tau = case.q.double(), case.c.double(), case.tau.double()
    ref = loss_and_grads(eager(1024), exact)

    def rel_err(rows: int) -> float:
        dc = loss_and_grads(eager(rows), case)[2]
        return float((dc.double() - ref[2]).norm() / ref[2].norm())

    assert rel_err(22) < 1.5 * rel_err(1024)
