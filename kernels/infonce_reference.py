"""Pure-torch InfoNCE pieces, one candidate chunk at a time: the CPU path and the Triton kernels' oracle.

Each function only ever holds a [B, chunk] block of scores, so memory is O((B + N)·d + B·chunk).
The formula (shared by every backend; see `kernels.infonce`):

    logits_ij = (q_i · c_j) / tau
    excluded_ij = j != labels_i  and  cand_ids_j ∈ {query_pos_ids_ip : query_pos_ids_ip >= 0}
    loss_i = logsumexp_{j not excluded} logits_ij − logits_i,labels_i
"""

from __future__ import annotations

import torch

from kernels.precision import accumulator_dtype


def excluded_mask(
    labels_local: torch.Tensor, cand_ids: torch.Tensor | None, query_pos_ids: torch.Tensor | None
) -> torch.Tensor | None:
    """[B, n] bool: candidate j of this chunk is another positive of query i (never the labelled one).

    `labels_local` are the labels shifted into chunk coordinates (outside [0, n) when the positive
    lives in another chunk). Built from ids on the fly, so no B × N mask is ever kept.
    """
    if cand_ids is None or query_pos_ids is None:
        return None
    n = cand_ids.shape[0]
    excl = torch.zeros(labels_local.shape[0], n, dtype=torch.bool, device=cand_ids.device)
    for p in range(query_pos_ids.shape[1]):  # P is small: one [B, n] compare per positive slot
        pid = query_pos_ids[:, p : p + 1]
        excl |= (cand_ids[None, :] == pid) & (pid >= 0)
    cols = torch.arange(n, device=cand_ids.device)
    excl &= cols[None, :] != labels_local[:, None]
    return excl


def chunk_logits(
    q: torch.Tensor,
    c_chunk: torch.Tensor,
    labels_local: torch.Tensor,
    tau: torch.Tensor,
    cand_ids_chunk: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
) -> torch.Tensor:
    """[B, n] logits (fp32, fp64 for fp64 inputs) of one chunk with excluded entries at -inf."""
    logits = (
        (q @ c_chunk.T).to(accumulator_dtype(q.dtype)).div_(tau)
    )  # in place: the matmul result is a fresh tensor
    excl = excluded_mask(labels_local, cand_ids_chunk, query_pos_ids)
    if excl is not None:
        logits.masked_fill_(excl, float("-inf"))
    return logits


def forward_stats(
    q: torch.Tensor,
    c: torch.Tensor,
    labels: torch.Tensor,
    tau: torch.Tensor,
    cand_ids: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
    chunk: int,
    tiles: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lse [B], positive logit [B]) in the accumulator dtype, streaming over candidate chunks with a running logsumexp.

    `tiles` (the Triton backends' tile sizes) does not apply here."""
    b, n = q.shape[0], c.shape[0]
    acc = accumulator_dtype(q.dtype)
    lse = torch.full((b,), float("-inf"), dtype=acc, device=q.device)
    pos = torch.zeros(b, dtype=acc, device=q.device)
    rows = torch.arange(b, device=q.device)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        local = labels - n0
        logits = chunk_logits(
            q, c[n0:n1], local, tau, None if cand_ids is None else cand_ids[n0:n1], query_pos_ids
        )
        lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
        inside = (local >= 0) & (local < n1 - n0)
        pos = torch.where(inside, logits[rows, local.clamp(0, n1 - n0 - 1)], pos)
    return lse, pos


def softmax_grad_(
    logits: torch.Tensor, lse: torch.Tensor, labels_local: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """In place on `logits` [B, n]: scale · (softmax_ij − [j = label_i]); exp(-inf) = 0 where excluded."""
    g = logits.sub_(lse[:, None]).exp_()
    n = logits.shape[1]
    inside = (labels_local >= 0) & (labels_local < n)
    rows = torch.nonzero(inside).squeeze(1)
    g[rows, labels_local[rows]] -= 1.0
    return g.mul_(scale)


def grad_scores(
    q: torch.Tensor,
    c_chunk: torch.Tensor,
    labels_local: torch.Tensor,
    tau: torch.Tensor,
    cand_ids_chunk: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
    lse: torch.Tensor,
    grad_rows: torch.Tensor,
    tiles: dict | None = None,
) -> torch.Tensor:
    """dLoss/dscores of one chunk, grad_i · (softmax_ij − [j = label_i]) / tau, zero where excluded.

    Returned in q's dtype: the two matmuls that consume it run in that dtype. `tiles`: not used here.
    """
    logits = chunk_logits(q, c_chunk, labels_local, tau, cand_ids_chunk, query_pos_ids)
    return softmax_grad_(logits, lse, labels_local, (grad_rows / tau)[:, None]).to(q.dtype)
