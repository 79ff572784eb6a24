"""distill_kl_loss: chunked reference against the plain loss and a literal KL; both input forms."""

from __future__ import annotations

import pytest
import torch

from kernels.distill_kl import distill_kl_rows
from tests.losses.cases import distill_case
from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.distill_kl import distill_kl_loss


def grads(fn, q, c, tau):
    q, c, tau = (x.clone().requires_grad_(True) for x in (q, c, tau))
    loss = fn(q, c, tau)
    loss.backward()
    return loss.detach(), q.grad, c.grad, tau.grad


def literal(q, c, index, teacher, tau, t_tau):
    """float64, one row at a time, padding dropped: Σ p log(p / q) / B."""
    total = 0.0
    for i in range(q.shape[0]):
        keep = index[i] >= 0
        s = (c[index[i][keep]].double() @ q[i].double()) / tau.double()
        t = teacher[i][keep].double() / t_tau
        p_t, log_s = torch.softmax(t, 0), torch.log_softmax(s, 0)
        total = total + (p_t * (torch.log(p_t) - log_s)).sum()
    return total / q.shape[0]


@pytest.mark.parametrize("impl_chunk", [("plain", None), ("chunked", 1), ("chunked", 4), ("chunked", 100)])
def test_index_form_matches_literal(impl_chunk):
    impl, chunk = impl_chunk
    q, c, index, teacher = distill_case(seed=1)
    tau = torch.tensor(0.05)

    def ours(q, c, tau):
        if impl == "plain":
            return distill_kl_loss(q, c, teacher, tau, index=index, teacher_temperature=0.1, impl="plain")
        t_logits = teacher / 0.1
        return distill_kl_rows(q, c, index, t_logits, tau, backend="torch", chunk=chunk).sum() / q.shape[0]

    got = grads(ours, q, c, tau)
    ref = grads(lambda q, c, tau: literal(q, c, index, teacher, tau, 0.1), q, c, tau)
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a, b.float(), rtol=1e-5, atol=1e-6, msg=name)


def test_dense_form_equals_index_form_and_shared_tau_is_detached():
    q, c, index, teacher = distill_case(seed=2)
    index = index.clamp(min=0)
    dense = c[index]  # [B, K, d]
    tau = torch.tensor(0.05, requires_grad=True)
    a = distill_kl_loss(q, dense, teacher, tau, impl="chunked")
    b = distill_kl_loss(q, c, teacher, tau, index=index, impl="plain")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (ga,) = torch.autograd.grad(a, tau)
    # teacher uses tau detached: the gradient equals that with a constant teacher temperature 0.05
    c2 = distill_kl_loss(q, dense, teacher, tau, teacher_temperature=0.05, impl="chunked")
    (gb,) = torch.autograd.grad(c2, tau)
    torch.testing.assert_close(ga, gb)


def test_identical_distributions_give_zero():
    q, c, index, _ = distill_case(seed=3)
    index = index.clamp(min=0)
    tau = 0.05
    student = torch.einsum("bd,bkd->bk", q, c[index])
    loss = distill_kl_loss(q, c, student, tau, index=index, impl="chunked")
    assert abs(float(loss)) < 1e-6


def test_bf16_close_to_fp32():
    q, c, index, teacher = distill_case(b=8, k=7, n=30, d=32, seed=4)
    tau = torch.tensor(0.05)
    got = grads(
        lambda q, c, t: distill_kl_loss(q, c, teacher, t, index=index, impl="chunked"),
        q.bfloat16(),
        c.bfloat16(),
        tau,
    )
    ref = grads(
        lambda q, c, t: distill_kl_loss(q, c, teacher, t, index=index, impl="plain"),
        q.bfloat16().float(),
        c.bfloat16().float(),
        tau,
    )
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=3e-2, atol=3e-2, msg=name)


def test_bad_inputs():
    q, c, index, teacher = distill_case()
    with pytest.raises(UmarvelError, match="field 'c'"):
        distill_kl_loss(q, c, teacher, 0.05)
    with pytest.raises(UmarvelError, match="an index is out of range"):
        distill_kl_loss(q, c, teacher, 0.05, index=index + 100)
    bad = index.clone()
    bad[1] = -1
    with pytest.raises(UmarvelError, match="a query has no candidate"):
        distill_kl_loss(q, c, teacher, 0.05, index=bad)
    with pytest.raises(UmarvelError, match="teacher_scores"):
        distill_kl_loss(q, c, teacher[:, :2], 0.05, index=index)
    with pytest.raises(UmarvelError, match="unknown loss impl 'eager'"):  # InfoNCE-only
        distill_kl_loss(q, c, teacher, 0.05, index=index, impl="eager")


def test_auto_is_chunked_on_cpu():
    q, c, index, teacher = distill_case()
    auto = distill_kl_loss(q, c, teacher, 0.05, index=index)
    torch.testing.assert_close(auto, distill_kl_loss(q, c, teacher, 0.05, index=index, impl="chunked"))


def test_gradcheck_float64():
    q, c, index, teacher = distill_case(b=3, k=4, n=5, d=6, seed=5, dtype=torch.float64)
    q.requires_grad_(True)
    c.requires_grad_(True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def fn(q, c, tau):
        return distill_kl_rows(q, c, index, teacher.double() / 0.2, tau, chunk=2)

    assert torch.autograd.gradcheck(fn, (q, c, tau))
