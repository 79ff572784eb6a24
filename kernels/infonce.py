"""Memory-bounded InfoNCE with id-based false-negative exclusion: one autograd function, two backends.

Formula (q [B, d] and c [N, d] are L2-normalised by the caller, tau > 0):

    logits_ij   = (q_i · c_j) / tau
    excluded_ij = j != labels_i  and  cand_ids_j ∈ {query_pos_ids_ip : query_pos_ids_ip >= 0}
    loss_i      = logsumexp_{j not excluded} logits_ij − logits_i,labels_i

The forward keeps only lse_i (fp32, [B]); the backward recomputes scores chunk by chunk
(`grad_scores`: G_ij = grad_i · (softmax_ij − [j = labels_i]) / tau, zero where excluded, in q's
dtype) and feeds each chunk to two matmuls: dq += G·c_chunk (fp32 accumulator), dc_chunk = Gᵀ·q.
The temperature gradient needs no extra pass: with s_ij = q_i · c_j,
dL/dtau = −(1/tau)·Σ_ij G_ij s_ij = −(1/tau)·Σ_i q_i · dq_i.

Backends: "torch" (`kernels.infonce_reference`, any device), "triton" (`kernels.infonce_triton`:
fused split-N online-logsumexp forward, fused recompute+mask+softmax-gradient tile kernel in the
backward) and "hybrid" (`kernels.infonce_hybrid`: cuBLAS score products per chunk, the same Triton
kernels reading them). Triton is imported only when a Triton backend runs.
"""

from __future__ import annotations

import torch

from kernels import infonce_reference
from kernels.precision import accumulator_dtype

BACKENDS = ("torch", "triton", "hybrid")
DQ_ROWS = 4096  # rows of dq per product in the backward: a [4096, d] temporary instead of [B, d]
chunk_override: int | None = None  # set by `umarvel bench loss`'s chunk sweep, never by library code


def default_chunk(b: int, device: torch.device) -> int:
    """Candidates per backward chunk: a [B, chunk] block of ~16 MiB (CPU) / ~128 MiB fp32 (CUDA)."""
    budget = 2**25 if device.type == "cuda" else 2**22
    return max(16, budget // max(b, 1))


def _backend(name: str):
    if name == "torch":
        return infonce_reference
    if name == "triton":
        from kernels import infonce_triton  # lazy: imports triton

        return infonce_triton
    if name == "hybrid":
        from kernels import infonce_hybrid  # lazy: imports triton

        return infonce_hybrid
    raise ValueError(f"unknown backend {name!r} (expected one of {BACKENDS})")


class _InfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, c, tau, labels, cand_ids, query_pos_ids, backend, chunk):
        impl = _backend(backend)
        lse, pos = impl.forward_stats(q, c, labels, tau, cand_ids, query_pos_ids, chunk)
        ctx.save_for_backward(q, c, tau, labels, cand_ids, query_pos_ids, lse)
        ctx.backend, ctx.chunk = backend, chunk
        return lse - pos

    @staticmethod
    def backward(ctx, grad_rows):
        q, c, tau, labels, cand_ids, query_pos_ids, lse = ctx.saved_tensors
        dq, dc, dtau = backward_from_lse(
            q, c, tau, labels, cand_ids, query_pos_ids, lse, grad_rows, ctx.backend, ctx.chunk,
            ctx.needs_input_grad[:3],
        )  # fmt: skip
        return dq, dc, dtau, None, None, None, None, None


def backward_from_lse(
    q: torch.Tensor,
    c: torch.Tensor,
    tau: torch.Tensor,
    labels: torch.Tensor,
    cand_ids: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
    lse: torch.Tensor,
    grad_rows: torch.Tensor,
    backend: str,
    chunk: int,
    needs: tuple[bool, ...],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(dq, dc, dtau) for upstream row gradients, recomputing scores chunk by chunk from the saved lse."""
    impl = _backend(backend)
    acc = accumulator_dtype(q.dtype)
    grad_rows = grad_rows.to(acc).contiguous()
    n = c.shape[0]
    need_q, need_c, need_tau = needs
    dq = torch.zeros(q.shape, dtype=acc, device=q.device)
    dc = torch.empty_like(c) if need_c else None
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        g = impl.grad_scores(
            q,
            c[n0:n1],
            labels - n0,
            tau,
            None if cand_ids is None else cand_ids[n0:n1],
            query_pos_ids,
            lse,
            grad_rows,
        )
        for r0 in range(0, q.shape[0], DQ_ROWS):  # row blocks: the product's temporary stays small
            dq[r0 : r0 + DQ_ROWS].add_(g[r0 : r0 + DQ_ROWS] @ c[n0:n1])  # promotes into fp32
        if need_c:
            torch.mm(g.T, q, out=dc[n0:n1])
    dtau = -row_dot_sum(q, dq) / tau if need_tau else None
    return (dq.to(q.dtype) if need_q else None), dc, dtau


def row_dot_sum(a: torch.Tensor, b: torch.Tensor, rows: int = 4096) -> torch.Tensor:
    """Σ_ij a_ij · b_ij in the accumulator dtype, a block of rows at a time (no full-size upcast copy)."""
    acc = accumulator_dtype(a.dtype)
    total = torch.zeros((), dtype=acc, device=a.device)
    for r0 in range(0, a.shape[0], rows):
        total += (a[r0 : r0 + rows].to(acc) * b[r0 : r0 + rows].to(acc)).sum()
    return total


def info_nce_rows(
    q: torch.Tensor,
    c: torch.Tensor,
    labels: torch.Tensor,
    tau: torch.Tensor,
    cand_ids: torch.Tensor | None = None,
    query_pos_ids: torch.Tensor | None = None,
    backend: str = "torch",
    chunk: int | None = None,
) -> torch.Tensor:
    """Per-query InfoNCE losses [B] (fp32); gradients flow to q, c and tau (a 0-dim fp32 tensor).

    Inputs are trusted (shapes/dtypes checked by `umarvel_cli.losses.infonce`). `cand_ids` [N] and
    `query_pos_ids` [B, P] are int64 (pad -1), both or neither.
    """
    if chunk is None:
        chunk = chunk_override or default_chunk(q.shape[0], q.device)
    q, c = q.contiguous(), c.contiguous()
    return _InfoNCE.apply(q, c, tau, labels, cand_ids, query_pos_ids, backend, chunk)
