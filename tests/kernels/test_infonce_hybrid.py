"""The hybrid InfoNCE backend (cuBLAS score products, Triton kernels reading them) against the plain
loss: value and all gradients, under the CPU interpreter or compiled on a GPU (UMARVEL_TEST_ON_GPU=1)."""

from __future__ import annotations

import pytest
import torch

from kernels.infonce import info_nce_rows
from tests.losses.cases import infonce_case, loss_and_grads
from umarvel_cli.losses.infonce import info_nce_loss

TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.bfloat16: {"rtol": 5e-2, "atol": 2e-2},
}


def hybrid(chunk):
    def fn(q, c, labels, tau, **kw):
        return info_nce_rows(q, c, labels, tau, backend="hybrid", chunk=chunk, **kw).mean()

    return fn


def plain_fp32(q, c, labels, tau, **kw):
    return info_nce_loss(q.float(), c.float(), labels, tau, impl="plain", **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_ids", [False, True])
def test_matches_plain_over_several_chunks(dtype, with_ids, kernel_device):
    # chunk 24 cuts 70 candidates into 3 chunks, the positives landing in different ones
    case = infonce_case(37, 70, 40, dtype=dtype, seed=31, device=kernel_device)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids} if with_ids else {}
    got = loss_and_grads(hybrid(24), case, **kw)
    ref = loss_and_grads(plain_fp32, case, **kw)
    assert got[1].dtype == dtype and got[2].dtype == dtype
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a.float(), b.float(), msg=name, **TOL[dtype])


def test_one_candidate_and_public_impl(kernel_device):
    one = infonce_case(4, 1, 8, seed=32, device=kernel_device)
    loss, dq, _, _ = loss_and_grads(hybrid(16), one)
    assert float(loss) == 0.0 and float(dq.abs().max()) <= 1e-6
    case = infonce_case(18, 50, 24, seed=33, device=kernel_device)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids, "reduction": "none"}
    got = info_nce_loss(case.q, case.c, case.labels, 0.05, impl="hybrid", **kw)
    ref = info_nce_loss(case.q, case.c, case.labels, 0.05, impl="chunked", **kw)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
