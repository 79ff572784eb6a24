"""Pure-torch distillation KL, a chunk of queries at a time: the CPU path and the Triton kernels' oracle.

Candidates are rows of c [N, d] picked by index [B, K] (-1 = padding), gathered per query chunk only,
so the [B, K, d] copy that the unfused loss builds never exists whole.
"""

from __future__ import annotations

import torch

from kernels.precision import accumulator_dtype


def _chunk_logits(q, c, index, t_logits, tau):
    """Student logits (masked -inf), log p_student, p_teacher and the valid mask for one query chunk."""
    valid = index >= 0
    cand = c[index.clamp(min=0)]  # [bc, K, d]
    s = torch.einsum("bd,bkd->bk", q, cand).to(accumulator_dtype(q.dtype)) / tau
    s = s.masked_fill(~valid, float("-inf"))
    lse = torch.logsumexp(s, dim=1)
    log_t = torch.log_softmax(t_logits.masked_fill(~valid, float("-inf")), dim=1)
    return cand, s, lse, log_t, valid


def forward_rows(q, c, index, t_logits, tau, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL(p_teacher ‖ p_student) per query [B], student logsumexp [B]), in the accumulator dtype."""
    rows, lses = [], []
    for b0 in range(0, q.shape[0], chunk):
        b1 = min(q.shape[0], b0 + chunk)
        _, s, lse, log_t, valid = _chunk_logits(q[b0:b1], c, index[b0:b1], t_logits[b0:b1], tau)
        log_s = s - lse[:, None]
        terms = torch.where(valid, log_t.exp() * (log_t - log_s), torch.zeros_like(s))
        rows.append(terms.sum(1))
        lses.append(lse)
    return torch.cat(rows), torch.cat(lses)


def backward_grads(q, c, index, t_logits, tau, lse, grad_rows, chunk: int, need_c: bool):
    """(dq [B, d], dc [N, d] or None) in the accumulator dtype: dlogit_ik = grad_i · (p_student_ik − p_teacher_ik)."""
    acc = accumulator_dtype(q.dtype)
    dq = torch.empty(q.shape, dtype=acc, device=q.device)
    dc = torch.zeros(c.shape, dtype=acc, device=c.device) if need_c else None
    for b0 in range(0, q.shape[0], chunk):
        b1 = min(q.shape[0], b0 + chunk)
        cand, s, _, log_t, valid = _chunk_logits(q[b0:b1], c, index[b0:b1], t_logits[b0:b1], tau)
        p_s = torch.exp(s - lse[b0:b1, None])
        ds = grad_rows[b0:b1, None] * (p_s - log_t.exp()) / tau
        ds = torch.where(valid, ds, torch.zeros_like(ds))
        dq[b0:b1] = torch.einsum("bk,bkd->bd", ds, cand.to(acc))
        if need_c:
            contrib = ds[:, :, None] * q[b0:b1, None, :].to(acc)
            dc.index_add_(0, index[b0:b1][valid], contrib[valid])
    return dq, dc
