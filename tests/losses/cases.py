"""Shared random inputs for the loss tests: normalised embeddings, labels, ids with false negatives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class InfoNCECase:
    q: torch.Tensor
    c: torch.Tensor
    labels: torch.Tensor
    tau: torch.Tensor
    cand_ids: torch.Tensor
    query_pos_ids: torch.Tensor


def infonce_case(
    b: int, n: int, d: int, dtype=torch.float32, seed: int = 0, n_ids: int | None = None, device="cpu"
):
    """Queries with a positive each; candidate ids drawn from a small pool so duplicates (false
    negatives) occur; each query lists its positive's id plus one random extra id, padded with -1.
    Drawn on the CPU (same values on every device), then moved to `device`."""
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, d, generator=g), dim=-1).to(dtype)
    c = F.normalize(torch.randn(n, d, generator=g), dim=-1).to(dtype)
    labels = torch.randint(0, n, (b,), generator=g)
    pool = n_ids if n_ids is not None else max(2, n // 3)
    cand_ids = torch.randint(0, pool, (n,), generator=g)
    extra = torch.randint(0, pool, (b,), generator=g)
    pad = torch.full((b,), -1, dtype=torch.int64)
    query_pos_ids = torch.stack([cand_ids[labels], extra, pad], dim=1)
    tau = torch.tensor(0.07, dtype=torch.float32)
    return InfoNCECase(*(t.to(device) for t in (q, c, labels, tau, cand_ids, query_pos_ids)))


def loss_and_grads(fn, case: InfoNCECase, **kw):
    """Loss value and gradients w.r.t. q, c, tau of fn(q, c, labels, tau, ...)."""
    q = case.q.clone().requires_grad_(True)
    c = case.c.clone().requires_grad_(True)
    tau = case.tau.clone().requires_grad_(True)
    loss = fn(q, c, case.labels, tau, **kw)
    loss.backward()
    return loss.detach(), q.grad, c.grad, tau.grad


def distill_case(b=6, k=5, n=20, d=16, seed=0, dtype=torch.float32, device="cpu"):
    """q [b, d], c [n, d], index [b, k] sharing rows across queries (row 0 padded), teacher [b, k]."""
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, d, generator=g), dim=-1).to(dtype)
    c = F.normalize(torch.randn(n, d, generator=g), dim=-1).to(dtype)
    index = torch.randint(0, n, (b, k), generator=g)  # shared rows: duplicates across queries
    index[0, -2:] = -1  # padding
    teacher = torch.rand(b, k, generator=g)
    return tuple(t.to(device) for t in (q, c, index, teacher))
