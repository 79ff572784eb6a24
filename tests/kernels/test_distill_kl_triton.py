"""Triton distillation-KL kernels under the CPU interpreter against the plain loss (value, all grads)."""

from __future__ import annotations

import pytest
import torch

from tests.losses.cases import distill_case
from umarvel_cli.losses.distill_kl import distill_kl_loss

TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.bfloat16: {"rtol": 3e-2, "atol": 3e-2}}


def grads(q, c, tau, **kw):
    q, c, tau = (x.clone().requires_grad_(True) for x in (q, c, tau))
    loss = distill_kl_loss(q, c, temperature=tau, **kw)
    loss.backward()
    return loss.detach(), q.grad, c.grad, tau.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("b", "k", "n", "d"), [(6, 5, 20, 40), (3, 20, 8, 16), (2, 1, 3, 16)])
def test_index_form_matches_plain(dtype, b, k, n, d, kernel_device):
    # k=20 > 16: two-vector BLOCK_K; n=8 < b*k: many shared rows (atomic dc); k=1: a single candidate
    q, c, index, teacher = distill_case(b=b, k=k, n=n, d=d, seed=b + k, dtype=dtype, device=kernel_device)
    if k == 1:
        index = index.clamp(min=0)
    tau = torch.tensor(0.05, device=kernel_device)
    kw = {"teacher_scores": teacher, "index": index, "teacher_temperature": 0.1}
    got = grads(q, c, tau, impl="triton", **kw)
    ref = grads(q.float(), c.float(), tau, impl="plain", **kw)
    assert got[1].dtype == dtype and got[2].dtype == dtype
    for name, a, r in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a.float(), r, msg=name, **TOL[dtype])


def test_dense_form_matches_chunked(kernel_device):
    q, c, index, teacher = distill_case(b=4, k=6, n=30, d=24, seed=9, device=kernel_device)
    dense = c[index.clamp(min=0)]
    tau = torch.tensor(0.07, device=kernel_device)
    got = grads(q, dense, tau, teacher_scores=teacher, impl="triton")
    ref = grads(q, dense, tau, teacher_scores=teacher, impl="chunked")
    for name, a, r in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6, msg=name)
