"""GradCache equals the plain large-batch loss: same loss, same parameter gradients (dropout included)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.training.toy import ToyEncoder
from umarvel_cli.training.gradcache import RngReplay, cached_backward, split_chunks

QUERIES = [
    f"query number {i} about {w}"
    for i, w in enumerate(["red", "green", "blue", "cat", "dog", "sun", "moon", "sea", "star"])
]
DOCS = [
    f"a document on {w} number {i}"
    for i, w in enumerate(["red", "green", "blue", "cat", "dog", "sun", "moon", "sea", "star"])
]
NEGS = [f"unrelated text {i}" for i in range(9)]


def _loss(model: ToyEncoder, embs: list[torch.Tensor]) -> torch.Tensor:
    q, pos, neg = embs
    cands = torch.cat([pos, neg])
    tau = model.log_temperature.exp()
    labels = torch.arange(len(q))
    return F.cross_entropy(q @ cands.T / tau, labels) + F.cross_entropy(pos @ q.T / tau, labels)


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def test_split_chunks():
    assert [list(c) for c in split_chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]


def test_rng_replay_repeats_dropout_and_restores_outer_state():
    rng = RngReplay()
    a = torch.rand(4)
    after = torch.get_rng_state()
    with rng:
        b = torch.rand(4)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), after)


def test_cached_backward_equals_plain_loss_and_gradients():
    torch.manual_seed(3)
    plain = ToyEncoder(dropout=0.2)
    loss = _loss(plain, [plain(QUERIES), plain(DOCS), plain(NEGS)])
    loss.backward()
    ref = _grads(plain)

    for chunk in (1, 2, 4, 100):
        torch.manual_seed(3)
        model = ToyEncoder(dropout=0.2)
        sides = [split_chunks(x, chunk) for x in (QUERIES, DOCS, NEGS)]
        got = cached_backward(model, sides, lambda e, m=model: _loss(m, e))
        assert abs(got.item() - loss.item()) < 1e-5, chunk
        for g, r in zip(_grads(model), ref, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    names = [n for n, _ in plain.named_parameters()]
    assert ref[names.index("log_temperature")].abs().item() > 0  # reached through the cached loss


def test_cached_backward_scales_and_skips_empty_side():
    torch.manual_seed(0)
    a = ToyEncoder(dropout=0.0)
    sides = [split_chunks(QUERIES, 3), split_chunks(DOCS, 3), []]
    cached_backward(a, sides, lambda e: _loss(a, e), scale=0.5)
    torch.manual_seed(0)
    b = ToyEncoder(dropout=0.0)
    (0.5 * _loss(b, [b(QUERIES), b(DOCS), torch.zeros(0, 16)])).backward()
    for g, r in zip(_grads(a), _grads(b), strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
