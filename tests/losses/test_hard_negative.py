"""hard_negative_loss: the released in-batch + hard logits written out by hand, with false-negative masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.hard_negative import hard_negative_candidates, hard_negative_loss, own_negative_stats


def _unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def released_rows(q, pos, neg, labels, tau, keys=None, query_keys=None):
    """Row i = [q_i . p_j for every j] ++ [q_i . h for every hard negative], one loop per row."""
    rows = []
    hard = neg.reshape(-1, q.shape[1])
    for i in range(q.shape[0]):
        logits, cand = [], []
        for j in range(pos.shape[0]):
            logits.append(float(q[i] @ pos[j]) / tau)
            cand.append(j)
        for h in range(hard.shape[0]):
            logits.append(float(q[i] @ hard[h]) / tau)
            cand.append(pos.shape[0] + h)
        mine = set() if query_keys is None else {int(x) for x in query_keys[i] if x >= 0}
        kept = [
            x
            for x, c in zip(logits, cand, strict=True)
            if c == int(labels[i]) or keys is None or int(keys[c]) not in mine
        ]
        rows.append(math.log(sum(math.exp(x) for x in kept)) - logits[int(labels[i])])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("impl", ["plain", "eager", "chunked"])
def test_matches_the_released_layout_and_masks_same_content(impl):
    g, k, d = 4, 3, 16
    q, pos, neg = _unit(g, d, seed=0), _unit(g, d, seed=1), _unit(g, k, d, seed=2)
    neg[1, 0] = pos[2]  # query 1's first mined negative duplicates query 2's positive
    labels = torch.arange(g)
    keys = torch.tensor([10, 11, 12, 13] + [100 + i for i in range(g * k)])
    keys[g + 1 * k + 0] = 12  # same content as positive 2
    query_keys = torch.tensor([[10, -1], [11, -1], [12, 11], [13, -1]])  # query 2 also has positive 11
    tau = 0.05
    got = hard_negative_loss(
        q,
        pos,
        neg,
        labels,
        tau,
        cand_keys=keys,
        query_pos_keys=query_keys,
        reduction="none",
        impl=impl,
    )
    want = released_rows(q, pos, neg, labels, tau, keys, query_keys)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    unmasked = released_rows(q, pos, neg, labels, tau)
    assert got[2] < unmasked[2] - 1e-3  # its duplicate and its other positive left the denominator
    torch.testing.assert_close(got[[0, 1, 3]].double(), unmasked[[0, 1, 3]], atol=1e-5, rtol=1e-5)


def test_local_rows_of_a_gathered_batch_and_learnable_temperature():
    g, k, d = 6, 2, 8
    pos, neg = _unit(g, d, seed=3).float(), _unit(g, k, d, seed=4).float()
    q = _unit(2, d, seed=5).float()
    labels = torch.tensor([4, 5])  # this rank holds the last two rows of the global batch
    log_tau = torch.tensor(math.log(0.05), requires_grad=True)
    loss = hard_negative_loss(q, pos, neg, labels, log_tau.exp(), impl="plain")
    want = released_rows(q.double(), pos.double(), neg.double(), labels, 0.05).mean()
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    loss.backward()
    assert log_tau.grad is not None and float(log_tau.grad) != 0.0  # the temperature learns


def test_own_negative_stats_pick_each_rows_own_block():
    d = 4
    pos = torch.eye(d)[:3]  # three global rows
    neg = torch.zeros(3, 2, d)
    neg[1, 0] = torch.tensor([0.0, 0.5, 0.0, 0.0])  # row 1's own negatives score 0.5 and 0.0
    neg[2, 1] = torch.tensor([0.0, 0.0, 2.0, 0.0])  # row 2's own negative beats its positive
    neg[0, 0] = torch.tensor([0.0, 9.0, 9.0, 0.0])  # row 0's: must not count for rows 1 and 2
    q = pos[1:]  # this rank holds rows 1 and 2
    margin, beats = own_negative_stats(q, pos, neg, torch.tensor([1, 2]), offset=1)
    torch.testing.assert_close(margin, torch.tensor([0.5, -1.0]))
    assert beats.tolist() == [1.0, 0.0]


def test_candidate_layout_and_bad_shapes():
    pos, neg = torch.zeros(2, 4), torch.arange(24.0).reshape(2, 3, 4)
    c = hard_negative_candidates(pos, neg)
    assert c.shape == (8, 4) and torch.equal(c[2], neg[0, 0]) and torch.equal(c[5], neg[1, 0])
    with pytest.raises(UmarvelError, match="one width"):
        hard_negative_candidates(pos, torch.zeros(2, 3, 5))
    with pytest.raises(UmarvelError, match="cand_keys"):
        hard_negative_loss(torch.ones(1, 4), pos + 1, neg, torch.tensor([0]), 0.05, cand_keys=torch.zeros(3, dtype=torch.int64),
                           query_pos_keys=torch.zeros(1, 1, dtype=torch.int64))  # fmt: skip
