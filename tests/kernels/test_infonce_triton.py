"""Triton InfoNCE kernels against the plain loss (value and all gradients): under the CPU interpreter,
or compiled on a GPU with UMARVEL_TEST_ON_GPU=1 (the `kernel_device` fixture, conftest)."""

from __future__ import annotations

import pytest
import torch

from kernels.infonce import info_nce_rows
from tests.kernels.conftest import ON_GPU
from tests.losses.cases import infonce_case, loss_and_grads
from umarvel_cli.losses.infonce import info_nce_loss

TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float16: {"rtol": 2e-2, "atol": 2e-3},
    torch.bfloat16: {"rtol": 5e-2, "atol": 2e-2},
}


def triton_rows(chunk, tiles=None):
    def fn(q, c, labels, tau, **kw):
        return info_nce_rows(q, c, labels, tau, backend="triton", chunk=chunk, tiles=tiles, **kw).mean()

    return fn


def plain_fp32(q, c, labels, tau, **kw):
    """The oracle: the unfused loss on the same (rounded) values, computed in fp32."""
    return info_nce_loss(q.float(), c.float(), labels, tau, impl="plain", **kw)


def compare(case, chunk, with_ids, dtype=torch.float32, tiles=None):
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids} if with_ids else {}
    got = loss_and_grads(triton_rows(chunk, tiles), case, **kw)
    ref = loss_and_grads(plain_fp32, case, **kw)
    assert got[1].dtype == dtype and got[2].dtype == dtype
    for name, a, b in zip(["loss", "dq", "dc", "dtau"], got, ref, strict=True):
        torch.testing.assert_close(a.float(), b.float(), msg=name, **TOL[dtype])


@pytest.mark.parametrize("with_ids", [False, True])
def test_several_tiles_fp32(with_ids, kernel_device):
    # B=37: 3 query tiles (last partial); N=70: 5 candidate tiles, 2 splits; d=40: partial d tile;
    # chunk 24 cuts the backward mid-tile.
    compare(infonce_case(37, 70, 40, seed=11, device=kernel_device), chunk=24, with_ids=with_ids)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precisions(dtype, kernel_device):
    compare(
        infonce_case(20, 40, 32, dtype=dtype, seed=12, device=kernel_device),
        chunk=64,
        with_ids=True,
        dtype=dtype,
    )


@pytest.mark.parametrize(("b", "n"), [(5, 3), (3, 1)])
def test_fewer_candidates_than_a_tile(b, n, kernel_device):
    compare(infonce_case(b, n, 16, seed=13, device=kernel_device), chunk=64, with_ids=n > 1)


def test_all_excluded_but_positive(kernel_device):
    case = infonce_case(6, 20, 16, seed=14, device=kernel_device)
    case.cand_ids = torch.full((20,), 7, dtype=torch.int64, device=kernel_device)
    case.query_pos_ids = torch.full((6, 2), -1, dtype=torch.int64, device=kernel_device)
    case.query_pos_ids[:, 0] = 7
    loss, dq, dc, dtau = loss_and_grads(triton_rows(8), case, cand_ids=case.cand_ids,
                                        query_pos_ids=case.query_pos_ids)  # fmt: skip
    # only the positive is left, so softmax = 1 and every gradient vanishes; compiled, the backward's
    # recomputed score may differ from the forward's in the last bits, a logit error of ~eps/tau
    # (seen: 3.4e-7 on an H200, 1.4e-6 in dtau on an H100); a real gradient here would be ~1/tau
    assert float(loss) == 0.0
    bound = 8 * torch.finfo(torch.float32).eps / float(case.tau)
    for grad in (dq, dc, dtau):
        assert float(grad.abs().max()) <= bound


def test_public_api_triton_impl_matches_chunked(kernel_device):
    case = infonce_case(18, 50, 24, seed=15, device=kernel_device)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids, "reduction": "none"}
    got = info_nce_loss(case.q, case.c, case.labels, 0.05, impl="triton", **kw)
    ref = info_nce_loss(case.q, case.c, case.labels, 0.05, impl="chunked", **kw)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="GPU tile sizes: UMARVEL_TEST_ON_GPU=1 on a CUDA machine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_tiles_on_a_ragged_shape(dtype, kernel_device):
    # several 128x64 tiles, ragged in every dimension, several backward chunks
    compare(infonce_case(1000, 3001, 1537, dtype=dtype, seed=16, device=kernel_device), chunk=1024,
            with_ids=True, dtype=dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_tile_sizes_under_the_interpreter(dtype, kernel_device, monkeypatch):
    # the tile configuration the GPU runs, on a shape that is ragged against it: partial query,
    # candidate and d tiles, several candidate splits and backward chunks
    from kernels import infonce_triton

    tiles = infonce_triton.FP32_GPU_TILES if dtype == torch.float32 else infonce_triton.GPU_TILES
    launched = []
    config = infonce_triton._config
    monkeypatch.setattr(infonce_triton, "_config", lambda dt, t=None: launched.append(t) or config(dt, t))
    case = infonce_case(150, 700, 72, dtype=dtype, seed=17, device=kernel_device)
    compare(case, chunk=300, with_ids=True, dtype=dtype, tiles=dict(tiles))
    assert launched and all(t == tiles for t in launched)  # forward and every backward chunk


def test_tuning_reaches_the_kernels_through_the_loss(kernel_device, monkeypatch):
    """`losses.infonce.KernelTuning` is the one way in: its tiles reach every Triton launch (hybrid:
    per chunk, so its chunk is seen too), and the value does not change."""
    from kernels import infonce_triton
    from umarvel_cli.losses.infonce import KernelTuning

    tiles = {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_D": 16, "num_warps": 4, "num_stages": 1}
    launched = []
    config = infonce_triton._config
    monkeypatch.setattr(infonce_triton, "_config", lambda dt, t=None: launched.append(t) or config(dt, t))
    case = infonce_case(18, 50, 24, seed=18, device=kernel_device)
    kw = {"cand_ids": case.cand_ids, "query_pos_ids": case.query_pos_ids, "reduction": "none"}
    tuned = KernelTuning(chunk=20, tiles=tiles)
    got = info_nce_loss(case.q, case.c, case.labels, 0.05, impl="hybrid", tuning=tuned, **kw)
    assert launched == [tiles] * 3  # 50 candidates in chunks of 20: three forward launches
    ref = info_nce_loss(case.q, case.c, case.labels, 0.05, impl="chunked", **kw)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
