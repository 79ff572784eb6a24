"""The recomputing backward's block structure (`kernels.infonce.backward_from_lse`): query row blocks
outer, candidate chunks inner, for every backend; dc's per-row-block rounding in bf16; the fp32-output
product; the hybrid backend's gradient written over its score block."""

from __future__ import annotations

import pytest
import torch

from kernels import infonce
from kernels.infonce import add_product_, info_nce_rows
from tests.kernels.conftest import ON_GPU
from tests.losses.cases import infonce_case, loss_and_grads
from umarvel_cli.losses.infonce import info_nce_loss


def rows_fn(backend, chunk):
    def fn(q, c, labels, tau, **kw):
        return info_nce_rows(q, c, labels, tau, backend=backend, chunk=chunk, **kw).mean()

    return fn


def plain_fp32(q, c, labels, tau, **kw):
    return info_nce_loss(q.float(), c.float(), labels, tau, impl="plain", **kw)


@pytest.mark.parametrize("backend", ["torch", "triton", "hybrid"])
def test_several_row_blocks_and_chunks_match_plain(backend, kernel_device, monkeypatch):
    # ROWS 8 cuts 37 queries into 5 row blocks (the last ragged), chunk 24 cuts 70 candidates into 3
    monkeypatch.setattr(infonce, "ROWS", 8)
    device = kernel_device if backend != "torch" else torch.device("cpu")
    case = infonce_case(37, 70, 40, seed=41, device=device)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids}
    got = loss_and_grads(rows_fn(backend, 24), case, **kw)
    ref = loss_and_grads(plain_fp32, case, **kw)
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


def test_bf16_dc_error_grows_little_over_four_row_blocks(monkeypatch):
    # dc sums its row blocks in bf16 (no fp32 [N, d] buffer): B = 16k has 4 blocks of 4096 rows.
    # Measured here: relative error vs fp64 0.0026 for one block, 0.0033 for 4, 0.0079 for 47.
    case = infonce_case(1024, 2048, 64, dtype=torch.bfloat16, seed=29)
    exact = infonce_case(1024, 2048, 64, seed=29)
    exact.q, exact.c, exact.tau = case.q.double(), case.c.double(), case.tau.double()
    ref_dc = loss_and_grads(rows_fn("torch", 512), exact)[2]

    def rel_err(rows: int) -> float:
        monkeypatch.setattr(infonce, "ROWS", rows)
        dc = loss_and_grads(rows_fn("torch", 512), case)[2]
        return float((dc.double() - ref_dc).norm() / ref_dc.norm())

    one, four = rel_err(1024), rel_err(256)
    assert one < 0.005 and four < 1.5 * one


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_add_product_accumulates_in_the_wider_dtype(dtype):
    device = torch.device("cuda") if ON_GPU else torch.device("cpu")
    g = torch.Generator().manual_seed(5)
    a = torch.randn(33, 70, generator=g).to(dtype).to(device)
    b = torch.randn(70, 19, generator=g).to(dtype).to(device)
    acc = torch.randn(33, 19, generator=g).to(device)
    want = acc.double() + a.double() @ b.double()
    add_product_(acc, a, b)
    assert acc.dtype == torch.float32
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bf16: the CPU path rounds the product once
    torch.testing.assert_close(acc.double(), want, rtol=tol, atol=tol)
    assert infonce._fp32_out_gemm(torch.device("cpu")) is False  # CPU: no fp32-output bf16 GEMM


def test_hybrid_gradient_overwrites_its_score_block(kernel_device):
    from kernels import infonce_triton

    case = infonce_case(21, 45, 24, seed=42, device=kernel_device)
    lse = infonce._backend("torch").forward_stats(
        case.q, case.c, case.labels, case.tau, case.cand_ids, case.query_pos_ids, 64
    )[0]
    grad_rows = torch.full((21,), 1 / 21, device=kernel_device)
    args = (case.labels, case.tau, case.cand_ids, case.query_pos_ids, lse, grad_rows)
    fused = infonce_triton.grad_scores(case.q, case.c, *args)
    s = case.q @ case.c.T
    out = infonce_triton.grad_from_scores(s, *args)
    assert out.data_ptr() == s.data_ptr()
    torch.testing.assert_close(out, fused, rtol=1e-5, atol=1e-6)
