"""The hard-negative stage's InfoNCE: the released "in-batch + hard" logits (spec 3.2), as a pure function.

Row i (a local query) scores every positive of the gathered batch and every gathered hard negative:

    candidates = [p_1 .. p_G] ++ [h_1,1 .. h_1,k, h_2,1 .. h_G,k]      (G = global batch)
    loss_i = logsumexp_{j not excluded} (q_i . c_j) / tau - (q_i . p_label_i) / tau

Unlike the released code, a candidate whose content key is one of the query's positives (its own
positives repeated in another row, a mined negative that duplicates a positive) leaves the
denominator; the labelled positive stays. The temperature is the caller's (learnable, clamped, as
the trainer keeps it). Gathering across ranks is the caller's job (rows of this rank: `labels` point at their positives in the gathered
block), so this stays a function of tensors and reuses `info_nce_loss` and its fused kernels.
"""

from __future__ import annotations

import torch

from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.infonce import info_nce_loss


def hard_negative_candidates(positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """[G + G*k, d]: the gathered positives, then every gathered hard negative ([G, k, d] or [G*k, d])."""
    d = positives.shape[-1]
    if negatives.shape[-1] != d:
        raise UmarvelError(
            f"negatives are {negatives.shape[-1]}-d, positives {d}-d", field="negatives", expected="one width"
        )
    return torch.cat([positives, negatives.reshape(-1, d).to(positives.dtype)])


def hard_negative_loss(
    q: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    labels: torch.Tensor,
    temperature: torch.Tensor | float,
    *,
    cand_keys: torch.Tensor | None = None,
    query_pos_keys: torch.Tensor | None = None,
    reduction: str = "mean",
    impl: str = "auto",
) -> torch.Tensor:
    """In-batch + hard InfoNCE of q [B, d] (module docstring).

    `positives` [G, d] and `negatives` [G, k, d] (or [G*k, d]) are the gathered normalised blocks;
    `labels` [B] index each query's positive in `positives`; `temperature` is a float or a 0-dim
    tensor (the trainer's learnable, clamped exp(log tau): gradients reach it). `cand_keys`
    [G + G*k] / `query_pos_keys` [B, P] (int64 content ids, pad -1; `umarvel_cli.losses.ids`) mask
    false negatives.
    """
    cands = hard_negative_candidates(positives, negatives)
    if cand_keys is not None and cand_keys.shape != (cands.shape[0],):
        raise UmarvelError(
            f"cand_keys have shape {tuple(cand_keys.shape)}",
            field="cand_keys",
            expected=f"[{cands.shape[0]}]",
        )
    return info_nce_loss(
        q,
        cands.to(q.dtype),
        labels,
        temperature,
        cand_ids=cand_keys,
        query_pos_ids=query_pos_keys,
        reduction=reduction,
        impl=impl,
    )


def own_negative_stats(
    q: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, labels: torch.Tensor, offset: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per local row: (positive score - best score of the row's own k hard negatives, whether the
    positive beats all of them). `negatives` is the gathered [G, k, d] block; row i owns
    negatives[offset + i]. Detached: for logs."""
    with torch.no_grad():
        d = q.shape[1]
        own = negatives.reshape(positives.shape[0], -1, d)[offset : offset + q.shape[0]]
        pos = (q * positives[labels]).sum(-1)
        best = torch.einsum("bd,bkd->bk", q, own.to(q.dtype)).max(dim=1).values
        return pos - best, (pos > best).float()
