"""InfoNCE backend "hybrid": cuBLAS score products per candidate chunk, Triton for everything after.

The fused kernels (`kernels.infonce_triton`) compute each score tile themselves; on an H200 their
products ran at 470 TFLOP/s where cuBLAS reaches 657 (docs/benchmarks.md). Here every chunk's scores
s = q · c_chunkᵀ come from one cuBLAS product in q's dtype (rounded like the plain loss's), and the
same Triton kernels, reading s instead of recomputing it, apply the exclusions and the online
logsumexp (forward) or write the softmax gradient (backward). Memory: one [B, chunk] score block
more than the fused path.
"""

from __future__ import annotations

import torch

from kernels import infonce_triton


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
    """(lse [B], positive logit [B]) in fp32, one candidate chunk at a time."""
    b, n = q.shape[0], c.shape[0]
    lse = torch.full((b,), float("-inf"), dtype=torch.float32, device=q.device)
    pos = torch.zeros(b, dtype=torch.float32, device=q.device)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        s = q @ c[n0:n1].T
        ids = None if cand_ids is None else cand_ids[n0:n1]
        chunk_lse, chunk_pos = infonce_triton.stats_from_scores(
            s, labels - n0, tau, ids, query_pos_ids, tiles
        )
        lse = torch.logaddexp(lse, chunk_lse)
        pos += chunk_pos  # zero for rows whose positive lies in another chunk
    return lse, pos


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
    """[B, n] dLoss/dscores of one candidate chunk, in q's dtype."""
    s = q @ c_chunk.T
    return infonce_triton.grad_from_scores(
        s, labels_local, tau, cand_ids_chunk, query_pos_ids, lse, grad_rows, tiles
    )
