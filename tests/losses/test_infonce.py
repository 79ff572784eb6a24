"""info_nce_loss: the chunked reference against the plain loss and an explicit per-row computation."""

from __future__ import annotations

import pytest
import torch

from kernels.infonce import info_nce_rows
from tests.losses.cases import infonce_case, loss_and_grads
from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.infonce import KernelTuning, info_nce_loss, resolve_impl


def explicit_rows(q, c, labels, tau, cand_ids, query_pos_ids):
    """Per-row loss in float64 with Python sets: the exclusion rule written out literally."""
    s = (q.double() @ c.double().T) / tau.double()
    rows = []
    for i in range(q.shape[0]):
        mine = {int(x) for x in query_pos_ids[i] if x >= 0}
        keep = [j for j in range(c.shape[0]) if j == int(labels[i]) or int(cand_ids[j]) not in mine]
        rows.append(torch.logsumexp(s[i, keep], 0) - s[i, int(labels[i])])
    return torch.stack(rows)


def chunked(chunk):
    def fn(q, c, labels, tau, **kw):
        return info_nce_rows(q, c, labels, tau, backend="torch", chunk=chunk, **kw).mean()

    return fn


def plain(q, c, labels, tau, **kw):
    return info_nce_loss(q, c, labels, tau, impl="plain", **kw)


def explicit(q, c, labels, tau, cand_ids=None, query_pos_ids=None):
    return explicit_rows(q, c, labels, tau, cand_ids, query_pos_ids).mean()


@pytest.mark.parametrize("with_ids", [False, True])
@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_chunked_matches_plain_value_and_grads(with_ids, chunk):
    case = infonce_case(37, 150, 24, seed=1)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids} if with_ids else {}
    ref = loss_and_grads(plain, case, **kw)
    got = loss_and_grads(chunked(chunk), case, **kw)
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_exclusion_matches_explicit_rule():
    case = infonce_case(20, 45, 16, seed=2, n_ids=6)  # few ids: many exclusions per row
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    ref = loss_and_grads(explicit, case, **kw)
    for fn in (plain, chunked(8)):
        got = loss_and_grads(fn, case, **kw)
        for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
            torch.testing.assert_close(a, b.float(), rtol=1e-5, atol=1e-6, msg=name)
    # the exclusion really changed the loss
    no_mask = info_nce_loss(case.q, case.c, case.labels, case.tau, impl="chunked")
    assert abs(float(no_mask) - float(ref[0])) > 1e-2


def test_all_excluded_but_positive_gives_zero_loss_and_grads():
    case = infonce_case(5, 12, 8, seed=3)
    cand_ids = torch.zeros(12, dtype=torch.int64)  # every candidate has the positive's id
    qpos = torch.zeros(5, 1, dtype=torch.int64)
    loss, dq, dc, dtau = loss_and_grads(chunked(5), case, cand_ids=cand_ids, query_pos_ids=qpos)
    assert float(loss) == 0.0
    assert float(dq.abs().max()) == 0.0 and float(dc.abs().max()) == 0.0 and float(dtau) == 0.0


def test_one_candidate():
    case = infonce_case(4, 1, 8, seed=4)
    loss, dq, dc, dtau = loss_and_grads(chunked(16), case)
    assert float(loss) == 0.0 and float(dq.abs().max()) == 0.0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions(reduction):
    case = infonce_case(9, 30, 8, seed=5)
    got = info_nce_loss(case.q, case.c, case.labels, 0.05, reduction=reduction, impl="chunked")
    ref = info_nce_loss(case.q, case.c, case.labels, 0.05, reduction=reduction, impl="plain")
    assert got.shape == ((9,) if reduction == "none" else ())
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_bf16_close_to_fp32():
    case = infonce_case(16, 64, 32, dtype=torch.bfloat16, seed=6)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    got = loss_and_grads(chunked(10), case, **kw)
    f32 = infonce_case(16, 64, 32, seed=6)
    f32.q, f32.c = case.q.float(), case.c.float()
    ref = loss_and_grads(plain, f32, **kw)
    assert got[1].dtype == torch.bfloat16
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=3e-2, atol=3e-2, msg=name)


def test_float_temperature_and_known_value():
    # two candidates, orthogonal: loss = log(1 + exp(-1/tau))
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = info_nce_loss(q, c, torch.tensor([0]), 0.5, impl="chunked")
    assert float(loss) == pytest.approx(float(torch.log1p(torch.exp(torch.tensor(-2.0)))), rel=1e-6)


def test_bad_inputs_raise_one_line_errors(monkeypatch):
    case = infonce_case(4, 10, 8)
    with pytest.raises(UmarvelError, match="label is out of range"):
        info_nce_loss(case.q, case.c, torch.tensor([0, 1, 2, 10]), 0.1)
    with pytest.raises(UmarvelError, match="cand_ids and query_pos_ids go together"):
        info_nce_loss(case.q, case.c, case.labels, 0.1, cand_ids=case.cand_ids)
    with pytest.raises(UmarvelError, match="unknown loss impl"):
        info_nce_loss(case.q, case.c, case.labels, 0.1, impl="fast")
    with pytest.raises(UmarvelError, match="not positive"):
        info_nce_loss(case.q, case.c, case.labels, 0.0)
    with pytest.raises(UmarvelError, match="expected q \\[B, d\\] and c \\[N, d\\]"):
        info_nce_loss(case.q, case.c[:, :4], case.labels, 0.1)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(UmarvelError, match="needs CUDA tensors"):
        info_nce_loss(case.q, case.c, case.labels, 0.1, impl="triton")
    with pytest.raises(UmarvelError, match="impl 'hybrid' needs CUDA tensors"):
        info_nce_loss(case.q, case.c, case.labels, 0.1, impl="hybrid")


def test_auto_is_eager_on_cpu():
    assert resolve_impl("auto", torch.device("cpu")) == "eager"


def test_auto_on_cuda_is_triton_at_every_size(monkeypatch):
    import umarvel_cli.losses.infonce as module

    monkeypatch.setattr(module, "triton_available", lambda: True)
    cuda = torch.device("cuda")  # resolution only: nothing is allocated
    assert resolve_impl("auto", cuda, torch.bfloat16) == "triton"
    assert resolve_impl("auto", cuda, torch.float64) == "eager"  # a dtype the kernels do not take
    monkeypatch.setattr(module, "triton_available", lambda: False)
    assert resolve_impl("auto", cuda, torch.bfloat16) == "eager"


def test_chunked_matches_plain_on_a_larger_shape():
    case = infonce_case(300, 1800, 64, seed=7)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    got = loss_and_grads(chunked(512), case, **kw)
    ref = loss_and_grads(plain, case, **kw)
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_auto_and_triton_dtype_rules(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_impl("triton", torch.device("cpu"), torch.bfloat16) == "triton"
    with pytest.raises(UmarvelError, match="does not take torch.float64"):
        resolve_impl("triton", torch.device("cpu"), torch.float64)
    assert resolve_impl("auto", torch.device("cpu"), torch.float64) == "eager"


def test_gradcheck_float64():
    case = infonce_case(5, 11, 6, dtype=torch.float64, seed=8)
    q, c = case.q.requires_grad_(True), case.c.requires_grad_(True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def fn(q, c, tau):
        return info_nce_rows(q, c, case.labels, tau, case.cand_ids, case.query_pos_ids, chunk=4)

    assert torch.autograd.gradcheck(fn, (q, c, tau))


def test_kernel_tuning_chunk_reaches_the_chunked_backend(monkeypatch):
    """A tuned chunk cuts the forward and the recomputing backward; the result is the default one."""
    from kernels import infonce_reference

    case = infonce_case(9, 23, 8, seed=21)
    widths = []
    forward, grad = infonce_reference.forward_stats, infonce_reference.grad_scores
    monkeypatch.setattr(
        infonce_reference, "forward_stats", lambda *a: widths.append(("fwd", a[6])) or forward(*a)
    )
    monkeypatch.setattr(
        infonce_reference,
        "grad_scores",
        lambda q, c, *a: widths.append(("bwd", c.shape[0])) or grad(q, c, *a),
    )
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}

    def tuned(q, c, labels, tau, **k):
        return info_nce_loss(q, c, labels, tau, impl="chunked", tuning=KernelTuning(chunk=10), **k)

    got = loss_and_grads(tuned, case, **kw)
    assert widths == [("fwd", 10), ("bwd", 10), ("bwd", 10), ("bwd", 3)]
    ref = loss_and_grads(plain, case, **kw)
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "tuning, message",
    [({"chunk": 0}, "chunk 0 is not positive"), ({"tiles": {"BLOCK_M": 64}}, "field 'tiles'")],
)
def test_bad_kernel_tuning(tuning, message):
    with pytest.raises(UmarvelError, match=message):
        KernelTuning(**tuning)
