"""Memory-bounded distillation KL over a per-query candidate list: one autograd function, two backends.

Formula (q [B, d] and c [N, d] L2-normalised by the caller; index [B, K] picks each query's
candidates, -1 = padding, excluded from both distributions; t_logits [B, K] are the teacher's
logits, constant):

    s_ik   = (q_i · c_index_ik) / tau
    loss_i = Σ_k p_t,ik · (log p_t,ik − log_softmax(s_i)_k),   p_t = softmax(t_logits_i)

Backward: dloss_i/ds_ik = p_s,ik − p_t,ik; dq_i = Σ_k ds_ik c_ik / tau; dc_j = Σ_(i,k: index_ik = j)
ds_ik q_i / tau; dL/dtau = −(1/tau)·Σ_i q_i · dq_i (same identity as InfoNCE).
Backends: "torch" (`kernels.distill_kl_reference`) and "triton" (`kernels.distill_kl_triton`, one
program per query, candidate rows gathered inside the kernel; triton imported lazily).
"""

from __future__ import annotations

import torch

from kernels import distill_kl_reference
from kernels.precision import accumulator_dtype

BACKENDS = ("torch", "triton")
MAX_K = 1024  # the triton kernel keeps a query's whole list in one [BLOCK_K, BLOCK_D] tile


def default_chunk(k: int, d: int, device: torch.device) -> int:
    """Queries per reference chunk: a gathered [chunk, K, d] block of ~4M (CPU) / ~32M (CUDA) elements."""
    budget = 2**25 if device.type == "cuda" else 2**22
    return max(1, budget // max(k * d, 1))


def _backend(name: str):
    if name == "torch":
        return distill_kl_reference
    if name == "triton":
        from kernels import distill_kl_triton  # lazy: imports triton

        return distill_kl_triton
    raise ValueError(f"unknown backend {name!r} (expected one of {BACKENDS})")


class _DistillKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, c, tau, index, t_logits, backend, chunk):
        impl = _backend(backend)
        rows, lse = impl.forward_rows(q, c, index, t_logits, tau, chunk)
        ctx.save_for_backward(q, c, tau, index, t_logits, lse)
        ctx.backend, ctx.chunk = backend, chunk
        return rows

    @staticmethod
    def backward(ctx, grad_rows):
        q, c, tau, index, t_logits, lse = ctx.saved_tensors
        impl = _backend(ctx.backend)
        acc = accumulator_dtype(q.dtype)
        grad_rows = grad_rows.to(acc).contiguous()
        need_c = ctx.needs_input_grad[1]
        dq, dc = impl.backward_grads(q, c, index, t_logits, tau, lse, grad_rows, ctx.chunk, need_c)
        dtau = -(q.to(acc) * dq).sum() / tau if ctx.needs_input_grad[2] else None
        dq_out = dq.to(q.dtype) if ctx.needs_input_grad[0] else None
        dc_out = dc.to(c.dtype) if need_c else None
        return dq_out, dc_out, dtau, None, None, None, None


def distill_kl_rows(
    q: torch.Tensor,
    c: torch.Tensor,
    index: torch.Tensor,
    t_logits: torch.Tensor,
    tau: torch.Tensor,
    backend: str = "torch",
    chunk: int | None = None,
) -> torch.Tensor:
    """Per-query KL(p_teacher ‖ p_student) [B] (fp32); gradients flow to q, c and tau (0-dim fp32).

    Inputs are trusted (checked by `umarvel_cli.losses.distill_kl`); every row needs one valid index.
    """
    if chunk is None:
        chunk = default_chunk(index.shape[1], q.shape[1], q.device)
    q, c = q.contiguous(), c.contiguous()
    t_logits = t_logits.detach().to(accumulator_dtype(q.dtype)).contiguous()
    return _DistillKL.apply(q, c, tau, index.contiguous(), t_logits, backend, chunk)
