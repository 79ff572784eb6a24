"""Triton distillation-KL kernels: the same two functions as `kernels.distill_kl_reference`, fused.

One program per query. The query's K candidate rows are gathered from c [N, d] by index inside the
kernel (no [B, K, d] copy), scores accumulate over BLOCK_D slices of d, and the student and teacher
softmaxes live in registers (K is a list length, ~50). The backward recomputes the scores, then a
second pass over d writes dq and scatters dc with fp32 atomics (queries may share candidate rows).

Importing this module imports triton; `kernels.distill_kl` does so only when the triton backend runs.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from kernels.distill_kl import MAX_K


def _blocks(k: int, d: int) -> dict:
    block_k = max(16, triton.next_power_of_2(k))
    block_d = max(16, min(triton.next_power_of_2(d), 8192 // block_k))
    if os.environ.get("TRITON_INTERPRET") == "1":
        block_d = 16  # several d slices on tiny test shapes
    return {"BLOCK_K": block_k, "BLOCK_D": block_d}


@triton.jit
def _student_logits(
    q_ptr, c_ptr, i, idx_safe, valid, D, stride_qm, stride_cn, inv_tau,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """fp32 [BLOCK_K] student logits of query i, -inf where invalid."""
    s = tl.zeros([BLOCK_K], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        qv = tl.load(q_ptr + i * stride_qm + offs_d, mask=d_mask, other=0.0).to(tl.float32)
        cv = tl.load(
            c_ptr + idx_safe[:, None] * stride_cn + offs_d[None, :],
            mask=valid[:, None] & d_mask[None, :],
            other=0.0,
        ).to(tl.float32)
        s += tl.sum(cv * qv[None, :], axis=1)
    return tl.where(valid, s * inv_tau, float("-inf"))


@triton.jit
def _teacher_log_probs(t_ptr, i, offs_k, valid, stride_tm):
    t = tl.load(t_ptr + i * stride_tm + offs_k, mask=valid, other=float("-inf"))
    t = tl.where(valid, t, float("-inf"))
    mt = tl.max(t, axis=0)
    return t - (mt + tl.log(tl.sum(tl.exp(t - mt), axis=0)))


@triton.jit
def _fwd_kernel(
    q_ptr, c_ptr, idx_ptr, t_ptr, tau_ptr, rows_ptr, lse_ptr,
    K, D, stride_qm, stride_cn, stride_im, stride_tm,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    idx = tl.load(idx_ptr + i * stride_im + offs_k, mask=offs_k < K, other=-1)
    valid = idx >= 0
    idx_safe = tl.where(valid, idx, 0)
    inv_tau = 1.0 / tl.load(tau_ptr).to(tl.float32)
    s = _student_logits(q_ptr, c_ptr, i, idx_safe, valid, D, stride_qm, stride_cn, inv_tau, BLOCK_K, BLOCK_D)
    ms = tl.max(s, axis=0)
    lse = ms + tl.log(tl.sum(tl.exp(s - ms), axis=0))
    log_t = tl.where(valid, _teacher_log_probs(t_ptr, i, offs_k, valid, stride_tm), 0.0)
    log_s = tl.where(valid, s - lse, 0.0)  # finite everywhere: no (-inf) - (-inf) on padding
    terms = tl.where(valid, tl.exp(log_t) * (log_t - log_s), 0.0)
    tl.store(rows_ptr + i, tl.sum(terms, axis=0))
    tl.store(lse_ptr + i, lse)


@triton.jit
def _bwd_kernel(
    q_ptr, c_ptr, idx_ptr, t_ptr, tau_ptr, lse_ptr, g_ptr, dq_ptr, dc_ptr,
    K, D, stride_qm, stride_cn, stride_im, stride_tm, stride_dqm, stride_dcn,
    NEED_C: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    idx = tl.load(idx_ptr + i * stride_im + offs_k, mask=offs_k < K, other=-1)
    valid = idx >= 0
    idx_safe = tl.where(valid, idx, 0)
    inv_tau = 1.0 / tl.load(tau_ptr).to(tl.float32)
    s = _student_logits(q_ptr, c_ptr, i, idx_safe, valid, D, stride_qm, stride_cn, inv_tau, BLOCK_K, BLOCK_D)
    p_s = tl.exp(s - tl.load(lse_ptr + i))
    p_t = tl.exp(_teacher_log_probs(t_ptr, i, offs_k, valid, stride_tm))
    ds = tl.where(valid, tl.load(g_ptr + i) * (p_s - p_t) * inv_tau, 0.0)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        cv = tl.load(
            c_ptr + idx_safe[:, None] * stride_cn + offs_d[None, :],
            mask=valid[:, None] & d_mask[None, :],
            other=0.0,
        ).to(tl.float32)
        tl.store(dq_ptr + i * stride_dqm + offs_d, tl.sum(cv * ds[:, None], axis=0), mask=d_mask)
        if NEED_C:
            qv = tl.load(q_ptr + i * stride_qm + offs_d, mask=d_mask, other=0.0).to(tl.float32)
            tl.atomic_add(
                dc_ptr + idx_safe[:, None] * stride_dcn + offs_d[None, :],
                ds[:, None] * qv[None, :],
                mask=valid[:, None] & d_mask[None, :],
            )


def _check_k(k: int) -> None:
    if k > MAX_K:
        raise ValueError(
            f"the triton distillation kernel takes at most {MAX_K} candidates per query, got {k}"
        )


def forward_rows(q, c, index, t_logits, tau, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL per query [B], student logsumexp [B]) in fp32; `chunk` is unused."""
    del chunk
    b, d = q.shape
    k = index.shape[1]
    _check_k(k)
    rows = torch.empty(b, dtype=torch.float32, device=q.device)
    lse = torch.empty(b, dtype=torch.float32, device=q.device)
    _fwd_kernel[(b,)](
        q, c, index, t_logits, tau, rows, lse,
        k, d, q.stride(0), c.stride(0), index.stride(0), t_logits.stride(0),
        **_blocks(k, d),
    )  # fmt: skip
    return rows, lse


def backward_grads(q, c, index, t_logits, tau, lse, grad_rows, chunk: int, need_c: bool):
    """(dq [B, d], dc [N, d] or None) in fp32; `chunk` is unused."""
    del chunk
    b, d = q.shape
    k = index.shape[1]
    dq = torch.empty(b, d, dtype=torch.float32, device=q.device)
    dc = torch.zeros(c.shape, dtype=torch.float32, device=c.device) if need_c else dq
    _bwd_kernel[(b,)](
        q, c, index, t_logits, tau, lse, grad_rows, dq, dc,
        k, d, q.stride(0), c.stride(0), index.stride(0), t_logits.stride(0), dq.stride(0), dc.stride(0),
        NEED_C=need_c, **_blocks(k, d),
    )  # fmt: skip
    return dq, (dc if need_c else None)
