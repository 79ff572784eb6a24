"""The distill objective: KL(teacher ‖ student) by hand on a tiny batch, τ's gradient only through the student."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.distill_data import DistillExample
from umarvel_cli.training.objectives import OBJECTIVES, build_objective, rank_view
from umarvel_cli.training.objectives.distill import DistillKL
from umarvel_cli.training.trainer import clamped_temperature

from .conftest import toy_config


def _examples() -> list[DistillExample]:
    """Two queries: q0 with 3 candidates, q1 with 2 (one shared with q0, so K pads to 3)."""
    rec = lambda i: Record(id=i, text=i)  # noqa: E731
    return [
        DistillExample(rec("q0"), rec("a"), [rec("a"), rec("b"), rec("c")], "a", ["a", "b", "c"], ["a"],
                       teacher_scores=[0.9, 0.2, 0.4]),
        DistillExample(rec("q1"), rec("d"), [rec("d"), rec("b")], "d", ["d", "b"], ["d"],
                       teacher_scores=[0.3, 0.8]),
    ]  # fmt: skip


def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_registered_for_the_distill_stage():
    assert OBJECTIVES["distill"] is DistillKL
    obj = build_objective("distill", toy_config(distill_infonce_weight=0.0, loss_impl="eager"))
    assert obj.impl == "auto" and obj.gathered_sides == () and obj.gathered_targets == ()


def test_batch_encodes_each_candidate_once_and_pads_short_lists():
    batch = DistillKL().batch(_examples(), torch.device("cpu"))
    assert [s.name for s in batch.sides] == ["query", "candidates"]
    assert [r.id for r in batch.sides[1].records] == ["a", "b", "c", "d"]  # "b" shared, encoded once
    assert batch.targets["index"].tolist() == [[0, 1, 2], [3, 1, -1]]
    torch.testing.assert_close(batch.targets["teacher"], torch.tensor([[0.9, 0.2, 0.4], [0.3, 0.8, 0.0]]))


def test_loss_equals_hand_kl_and_tau_learns_only_through_the_student():
    obj = DistillKL(impl="plain")
    batch = obj.batch(_examples(), torch.device("cpu"))
    q = _unit([1.0, 0.0, 0.2], [0.0, 1.0, 0.5]).requires_grad_(True)
    c = _unit([1.0, 0.1, 0.0], [0.3, 0.9, 0.0], [0.5, 0.5, 0.5], [0.1, 1.0, 0.4])
    log_tau = torch.tensor(math.log(0.1), requires_grad=True)
    tau = clamped_temperature(log_tau, 0.01, 1.0)
    out = obj.loss(rank_view(obj, batch, [q, c]), tau)

    # by hand: student cos/τ, teacher (F/2)/τ (the stored scores are F/2), KL(t ‖ s) per row, batch mean
    t = 0.1
    cos0 = torch.stack([q[0] @ c[0], q[0] @ c[1], q[0] @ c[2]]).detach()
    cos1 = torch.stack([q[1] @ c[3], q[1] @ c[1]]).detach()
    rows = []
    for cos, teach in ((cos0, [0.9, 0.2, 0.4]), (cos1, [0.3, 0.8])):
        p_t = torch.softmax(torch.tensor(teach) / t, 0)
        log_s = torch.log_softmax(cos / t, 0)
        rows.append((p_t * (p_t.log() - log_s)).sum())
    hand = (rows[0] + rows[1]) / 2
    torch.testing.assert_close(out.loss.detach(), hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.logs["kl"], hand, rtol=1e-5, atol=1e-6)
    # top-1: row 0 teacher picks a, student picks a (cos 0.99); row 1 teacher picks b
    s1 = cos1.argmax().item()
    assert out.logs["top1_agree"].item() == pytest.approx((1 + (s1 == 1)) / 2)

    # τ's gradient equals the one of the student side alone (teacher logits use τ detached)
    out.loss.backward()
    log_tau2 = torch.tensor(math.log(0.1), requires_grad=True)
    tau2 = log_tau2.exp()
    student_only = 0.0
    for cos, teach in ((cos0, [0.9, 0.2, 0.4]), (cos1, [0.3, 0.8])):
        p_t = torch.softmax(torch.tensor(teach) / 0.1, 0)  # constant teacher
        student_only = student_only - (p_t * torch.log_softmax(cos / tau2, 0)).sum() / 2
    student_only.backward()
    torch.testing.assert_close(log_tau.grad, log_tau2.grad, rtol=1e-4, atol=1e-6)
    assert log_tau.grad.abs() > 0 and q.grad is not None and q.grad.abs().sum() > 0


def test_infonce_option_adds_the_weighted_term_with_positives_masked():
    ex = _examples()
    plain = DistillKL(impl="plain")
    both = DistillKL(infonce_weight=0.5, impl="plain")
    assert both.gathered_sides == ("positive", "candidates")
    batch = both.batch(ex, torch.device("cpu"))
    assert [s.name for s in batch.sides] == ["query", "positive", "candidates"]
    q = _unit([1.0, 0.0, 0.2], [0.0, 1.0, 0.5])
    p = _unit([1.0, 0.1, 0.0], [0.1, 1.0, 0.4])
    c = _unit([1.0, 0.1, 0.0], [0.3, 0.9, 0.0], [0.5, 0.5, 0.5], [0.1, 1.0, 0.4])
    tau = torch.tensor(0.1)
    kl = plain.loss(rank_view(plain, plain.batch(ex, torch.device("cpu")), [q, c]), tau).loss
    out = both.loss(rank_view(both, batch, [q, p, c]), tau)
    # InfoNCE by hand: each query vs [p0, p1, a, b, c, d]; its own positive's copy in the lists is masked
    cands = torch.cat([p, c])
    logits = q @ cands.T / 0.1
    masks = [[False, False, True, False, False, False], [False, False, False, False, False, True]]
    nce = (
        sum(
            torch.logsumexp(logits[i].masked_fill(torch.tensor(masks[i]), -torch.inf), 0) - logits[i, i]
            for i in range(2)
        )
        / 2
    )
    torch.testing.assert_close(out.logs["infonce"], nce, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, kl + 0.5 * nce, rtol=1e-5, atol=1e-6)


def test_examples_without_a_teacher_list_are_refused():
    from umarvel_cli.training.data import TrainExample

    bare = TrainExample(Record(id="q", text="q"), Record(id="p", text="p"))
    with pytest.raises(UmarvelError, match="has no teacher list"):
        DistillKL().batch([bare], torch.device("cpu"))


def test_first_occurrences_keep_each_id_once_in_order():
    from umarvel_cli.training.objectives.distill import first_occurrences

    assert first_occurrences(torch.tensor([5, 3, 5, 7, 3])).tolist() == [0, 1, 3]
