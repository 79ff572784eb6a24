"""InfoNCE with its gradients computed in the forward pass, one block of query rows at a time.

The recomputing kernels (`kernels.infonce`) pay four B×N×d products: scores for the logsumexp in
the forward, then scores again, dq and dc in the backward. Here each block of query rows gets its
whole score row [rows, N] (exact softmax, no running logsumexp), so scores, dq and dc are three
products, like the plain loss, while memory stays one [rows, N] block (as in Liger's fused
linear cross-entropy). The gradients are those of the summed row losses; the first backward scales them
in place by the upstream gradient when it is the same for every row (mean and sum reductions,
i.e. every training step); any other backward recomputes them from the saved logsumexp.

dc accumulates over row blocks in fp32 (fp64 for fp64 inputs):
summing the blocks in bf16 tripled dc's error (0.8% instead of 0.26% relative to fp64 at 48 blocks),
so bf16 inputs pay an fp32 [N, d] buffer (the recomputing kernels' row blocks hold 4096 queries, so
they sum a few and do it in the input dtype). dq and the temperature gradient are complete per block.
"""

from __future__ import annotations

import torch

from kernels.infonce import add_product_, backward_from_lse, default_chunk, row_dot_sum
from kernels.infonce_reference import chunk_logits, softmax_grad_
from kernels.precision import accumulator_dtype


def default_rows(n: int, device: torch.device) -> int:
    """Query rows per block: a [rows, N] fp32 block of ~128 MiB (CUDA) / ~16 MiB (CPU)."""
    budget = 2**25 if device.type == "cuda" else 2**22
    return max(1, budget // max(n, 1))


DC_ROWS = 8192  # candidate rows per mixed-precision dc update: an [8192, d] temporary


def add_transposed_product_(acc: torch.Tensor, g: torch.Tensor, q: torch.Tensor) -> None:
    """acc += gᵀ·q, acc in a wider dtype than g and q, DC_ROWS rows at a time (where the product
    cannot be written in fp32 directly, its temporary in their dtype stays [DC_ROWS, d])."""
    for n0 in range(0, acc.shape[0], DC_ROWS):
        add_product_(acc[n0 : n0 + DC_ROWS], g[:, n0 : n0 + DC_ROWS].T, q)


class _InfoNCEEager(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, c, tau, labels, cand_ids, query_pos_ids, rows):
        need_q, need_c, need_tau = ctx.needs_input_grad[:3]
        want = need_q or need_c or need_tau
        acc = accumulator_dtype(q.dtype)
        b = q.shape[0]
        loss = torch.empty(b, dtype=acc, device=q.device)
        lse = torch.empty(b, dtype=acc, device=q.device)
        dq = torch.empty_like(q) if want else None
        dc = torch.zeros(c.shape, dtype=acc, device=c.device) if need_c else None
        dtau = torch.zeros((), dtype=acc, device=q.device)
        inv_tau = 1.0 / tau
        for r0 in range(0, b, rows):
            r1 = min(b, r0 + rows)
            q_b, lab = q[r0:r1], labels[r0:r1]
            qpos = None if query_pos_ids is None else query_pos_ids[r0:r1]
            logits = chunk_logits(q_b, c, lab, tau, cand_ids, qpos)
            lse_b = torch.logsumexp(logits, dim=1)
            lse[r0:r1] = lse_b
            loss[r0:r1] = lse_b - logits[torch.arange(r1 - r0, device=q.device), lab]
            if not want:
                continue
            g = softmax_grad_(logits, lse_b, lab, inv_tau).to(q.dtype)
            del logits
            torch.mm(g, c, out=dq[r0:r1])
            if need_c:
                add_transposed_product_(dc, g, q_b)
            if need_tau:
                dtau -= row_dot_sum(q_b, dq[r0:r1]) * inv_tau
        ctx.save_for_backward(q, c, tau, labels, cand_ids, query_pos_ids, lse)
        ctx.grads = (dq, dc, dtau)
        ctx.c_dtype = c.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_rows):
        need_q, need_c, need_tau = ctx.needs_input_grad[:3]
        uniform = bool((grad_rows == grad_rows[0]).all())  # mean / sum: one scale for every row
        if uniform and ctx.grads is not None:  # scaled in place and handed over once
            dq, dc, dtau = ctx.grads
            ctx.grads = None
            s = grad_rows[0]
            return (
                dq.mul_(s.to(dq.dtype)) if need_q else None,
                dc.mul_(s.to(dc.dtype)).to(ctx.c_dtype) if need_c else None,
                dtau * s if need_tau else None,
                None, None, None, None,
            )  # fmt: skip
        q, c, tau, labels, cand_ids, query_pos_ids, lse = ctx.saved_tensors
        grads = backward_from_lse(
            q, c, tau, labels, cand_ids, query_pos_ids, lse, grad_rows, "torch",
            default_chunk(q.shape[0], q.device), (need_q, need_c, need_tau),
        )  # fmt: skip
        return (*grads, None, None, None, None)


def info_nce_rows_eager(
    q: torch.Tensor,
    c: torch.Tensor,
    labels: torch.Tensor,
    tau: torch.Tensor,
    cand_ids: torch.Tensor | None = None,
    query_pos_ids: torch.Tensor | None = None,
    rows: int | None = None,
) -> torch.Tensor:
    """Per-query InfoNCE losses [B] (fp32), same contract as `kernels.infonce.info_nce_rows`."""
    if rows is None:
        rows = default_rows(c.shape[0], q.device)
    q, c = q.contiguous(), c.contiguous()
    return _InfoNCEEager.apply(q, c, tau, labels, cand_ids, query_pos_ids, rows)
