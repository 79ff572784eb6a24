"""Memory-bounded InfoNCE with id-based false-negative exclusion: one autograd function, three backends.

Formula (q [B, d] and c [N, d] are L2-normalised by the caller, tau > 0):

    logits_ij   = (q_i · c_j) / tau
    excluded_ij = j != labels_i  and  cand_ids_j ∈ {query_pos_ids_ip : query_pos_ids_ip >= 0}
    loss_i      = logsumexp_{j not excluded} logits_ij − logits_i,labels_i

The forward keeps only lse_i (fp32, [B]); the backward recomputes scores block by block, query
rows outer and candidate chunks inner (`grad_scores`: G_ij = grad_i · (softmax_ij − [j = labels_i])
/ tau, zero where excluded, in q's dtype) and feeds each block to two matmuls: dq_rows += G·c_chunk
(an fp32 accumulator per row block), dc_chunk += Gᵀ·q_rows.
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
ROWS = 4096  # query rows per backward block: the fp32 dq accumulator is [4096, d], not [B, d]


def default_chunk(b: int, device: torch.device) -> int:
    """Candidates per chunk: a backward block [min(B, ROWS), chunk] of 2^24 (CUDA) / 2^22 (CPU) scores."""
    budget = 2**24 if device.type == "cuda" else 2**22
    return max(16, budget // max(min(b, ROWS), 1))


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
    def forward(ctx, q, c, tau, labels, cand_ids, query_pos_ids, backend, chunk, tiles):
        impl = _backend(backend)
        lse, pos = impl.forward_stats(q, c, labels, tau, cand_ids, query_pos_ids, chunk, tiles)
        ctx.save_for_backward(q, c, tau, labels, cand_ids, query_pos_ids, lse)
        ctx.backend, ctx.chunk, ctx.tiles = backend, chunk, tiles
        return lse - pos

    @staticmethod
    def backward(ctx, grad_rows):
        q, c, tau, labels, cand_ids, query_pos_ids, lse = ctx.saved_tensors
        dq, dc, dtau = backward_from_lse(
            q, c, tau, labels, cand_ids, query_pos_ids, lse, grad_rows, ctx.backend, ctx.chunk,
            ctx.needs_input_grad[:3], ctx.tiles,
        )  # fmt: skip
        return dq, dc, dtau, None, None, None, None, None, None


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
    tiles: dict | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(dq, dc, dtau) for upstream row gradients, recomputing scores block by block from the saved lse.

    Query rows outer (ROWS at a time: each row block's dq is complete in a small fp32 accumulator),
    candidate chunks inner. dc sums its row blocks in place, in c's dtype: ceil(B / ROWS) roundings
    in bf16 instead of one (B = 16k: 4; measured in tests/kernels/test_infonce.py), in exchange for
    not holding an fp32 [B, d] accumulator (1.2% of the plain loss's memory at B = 16k, d = 3584).
    """
    impl = _backend(backend)
    acc_dtype = accumulator_dtype(q.dtype)
    grad_rows = grad_rows.to(acc_dtype).contiguous()
    b, n = q.shape[0], c.shape[0]
    need_q, need_c, need_tau = needs
    dq = torch.empty_like(q) if need_q else None
    dc = torch.empty_like(c) if need_c else None
    q_dot_dq = torch.zeros((), dtype=acc_dtype, device=q.device)
    for r0 in range(0, b, ROWS):
        r1 = min(b, r0 + ROWS)
        q_r = q[r0:r1]
        acc = torch.zeros(q_r.shape, dtype=acc_dtype, device=q.device)
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            g = impl.grad_scores(
                q_r,
                c[n0:n1],
                labels[r0:r1] - n0,
                tau,
                None if cand_ids is None else cand_ids[n0:n1],
                None if query_pos_ids is None else query_pos_ids[r0:r1],
                lse[r0:r1],
                grad_rows[r0:r1],
                tiles,
            )
            add_product_(acc, g, c[n0:n1])
            if need_c and r0 == 0:
                torch.mm(g.T, q_r, out=dc[n0:n1])
            elif need_c:
                dc[n0:n1].addmm_(g.T, q_r)
            del g
        if need_tau:  # 256-row pieces: the upcast temporaries stay ~1% of acc
            q_dot_dq += row_dot_sum(q_r, acc, rows=256)
        if need_q:
            dq[r0:r1] = acc
    return dq, dc, (-q_dot_dq / tau if need_tau else None)


_FP32_OUT_GEMM: dict[torch.device, bool] = {}  # per CUDA device: does addmm(out_dtype=fp32) work?


def _fp32_out_gemm(device: torch.device) -> bool:
    """Whether torch's addmm takes bf16/fp16 operands into an fp32 output in place (CUDA, torch >= 2.8)."""
    if device.type != "cuda":
        return False
    if device not in _FP32_OUT_GEMM:
        try:
            a = torch.ones(4, 8, dtype=torch.bfloat16, device=device)
            acc = torch.full((4, 4), 0.5, dtype=torch.float32, device=device)
            torch.addmm(acc, a, a.T, out_dtype=torch.float32, out=acc)
            _FP32_OUT_GEMM[device] = bool((acc == 8.5).all())
        except (RuntimeError, TypeError):
            _FP32_OUT_GEMM[device] = False
    return _FP32_OUT_GEMM[device]


def add_product_(acc: torch.Tensor, g: torch.Tensor, c: torch.Tensor) -> None:
    """acc += g·c, acc in the accumulator dtype: one GEMM writing fp32 where torch can (CUDA), else the
    product in g's dtype (rounded once per call) added to acc."""
    if acc.dtype == g.dtype:
        acc.addmm_(g, c)
    elif _fp32_out_gemm(acc.device):
        torch.addmm(acc, g, c, out_dtype=acc.dtype, out=acc)
    else:
        acc.add_(g @ c)


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
    tiles: dict | None = None,
) -> torch.Tensor:
    """Per-query InfoNCE losses [B] (fp32); gradients flow to q, c and tau (a 0-dim fp32 tensor).

    Inputs are trusted (shapes/dtypes checked by `umarvel_cli.losses.infonce`). `cand_ids` [N] and
    `query_pos_ids` [B, P] are int64 (pad -1), both or neither. Tuning (None = the defaults):
    `chunk` candidates per chunk, `tiles` the Triton tile configuration (`infonce_triton.GPU_TILES`'s
    form; the triton and hybrid backends).
    """
    if chunk is None:
        chunk = default_chunk(q.shape[0], q.device)
    q, c = q.contiguous(), c.contiguous()
    return _InfoNCE.apply(q, c, tau, labels, cand_ids, query_pos_ids, backend, chunk, tiles)
