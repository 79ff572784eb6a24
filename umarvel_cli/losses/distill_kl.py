"""Distillation KL (stage 8): the student's softmax over each query's candidate list follows the teacher's.

    s_ik   = cos(q_i, c_ik) / temperature          (q, c L2-normalised by the caller)
    t_ik   = teacher_scores_ik / teacher_temperature   (constant; defaults to temperature, detached)
    loss   = (1/B) Σ_i KL(softmax(t_i) ‖ softmax(s_i))   ("batchmean")

The original code used log(softmax(s) + 1e-8); this uses the exact log_softmax. Candidates come as
c [B, K, d], or as c [N, d] plus index [B, K] (rows of c, -1 = padding, left out of both softmaxes),
which lets queries share candidate rows without a [B, K, d] copy. `impl` as in `infonce`:
auto | plain | chunked | triton.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.distill_kl import MAX_K, distill_kl_rows
from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.infonce import resolve_impl, temperature_tensor

IMPLS = ("auto", "plain", "chunked", "triton")  # no eager variant: K candidates per query are few


def _flatten(c: torch.Tensor, index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(c [N, d], index [B, K]) from either input form."""
    if index is not None:
        return c, index
    b, k, _ = c.shape
    return c.reshape(b * k, c.shape[2]), torch.arange(b * k, device=c.device).reshape(b, k)


def _check(q, c, teacher_scores, index) -> None:
    if q.dim() != 2:
        raise UmarvelError(f"q has shape {tuple(q.shape)}", field="q", expected="[B, d]")
    b, d = q.shape
    if index is None:
        if c.dim() != 3 or c.shape[0] != b or c.shape[2] != d:
            raise UmarvelError(f"c has shape {tuple(c.shape)}", field="c", expected=f"[{b}, K, {d}]")
        k = c.shape[1]
    else:
        if c.dim() != 2 or c.shape[1] != d:
            raise UmarvelError(f"c has shape {tuple(c.shape)}", field="c", expected=f"[N, {d}] with index")
        if index.dim() != 2 or index.shape[0] != b or index.dtype != torch.int64:
            raise UmarvelError(
                f"index has shape {tuple(index.shape)} and dtype {index.dtype}",
                field="index",
                expected=f"int64 [{b}, K]",
            )
        if bool((index >= c.shape[0]).any()):
            raise UmarvelError("an index is out of range", field="index", expected=f"< {c.shape[0]}")
        if bool(((index >= 0).sum(1) == 0).any()):
            raise UmarvelError("a query has no candidate", field="index", expected="one index >= 0 per row")
        k = index.shape[1]
    if q.dtype != c.dtype:
        raise UmarvelError(f"q is {q.dtype} but c is {c.dtype}", field="q/c", expected="one dtype")
    if teacher_scores.shape != (b, k):
        raise UmarvelError(
            f"teacher_scores have shape {tuple(teacher_scores.shape)}",
            field="teacher_scores",
            expected=f"[{b}, {k}]",
        )


def _plain_rows(q, c, index, t_logits, tau) -> torch.Tensor:
    """Unfused: gather [B, K, d], logits, log_softmax, KL per row."""
    valid = index >= 0
    s = torch.einsum("bd,bkd->bk", q, c[index.clamp(min=0)]).float() / tau
    log_s = torch.log_softmax(s.masked_fill(~valid, float("-inf")), dim=1).masked_fill(~valid, 0.0)
    p_t = torch.softmax(t_logits.masked_fill(~valid, float("-inf")), dim=1)
    return F.kl_div(log_s, p_t, reduction="none").sum(1)


def distill_kl_loss(
    q: torch.Tensor,
    c: torch.Tensor,
    teacher_scores: torch.Tensor,
    temperature: float | torch.Tensor,
    index: torch.Tensor | None = None,
    teacher_temperature: float | torch.Tensor | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Batch-mean KL(softmax(teacher/τ_t) ‖ softmax(cos(q, c)/τ)); gradients reach q, c and a tensor τ.

    `teacher_scores` [B, K] are the stored fused scores (e.g. F/2 of the spec's §6.4); the teacher
    side is always constant. Returns an fp32 scalar.
    """
    _check(q, c, teacher_scores, index)
    which = resolve_impl(impl, q.device, q.dtype, impls=IMPLS, fallback="chunked")
    k = teacher_scores.shape[1]
    if which == "triton" and k > MAX_K:
        if impl != "auto":
            raise UmarvelError(
                f"{k} candidates per query", field="impl", expected=f"at most {MAX_K} for triton"
            )
        which = "chunked"
    tau = temperature_tensor(temperature, q.device)
    t_tau = tau.detach() if teacher_temperature is None else temperature_tensor(teacher_temperature, q.device)
    t_logits = teacher_scores.detach().float() / t_tau.detach()
    c_flat, idx = _flatten(c, index)
    if which == "plain":
        rows = _plain_rows(q, c_flat, idx, t_logits, tau)
    else:
        rows = distill_kl_rows(
            q, c_flat, idx, t_logits, tau, backend="torch" if which == "chunked" else "triton"
        )
    return rows.sum() / q.shape[0]
