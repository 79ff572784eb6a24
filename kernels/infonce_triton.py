"""Triton InfoNCE kernels: the same two functions as `kernels.infonce_reference`, fused.

- `forward_stats`: grid (query blocks × candidate splits); each program streams its candidate range
  in [BLOCK_M, BLOCK_N] score tiles (a BLOCK_D loop of tl.dot over d), applies the id-based
  exclusion on the fly and keeps an online logsumexp (flash-attention style); the per-split
  results (O(splits·B)) are merged in torch. Nothing of size B × N is written.
- `grad_scores`: one launch per candidate chunk; each program recomputes its score tile and writes
  grad_i · (softmax_ij − [j = label_i]) / tau (zero where excluded) into the [B, chunk] buffer that the
  autograd function multiplies with c_chunk and q (cuBLAS). d is far too large (1.5k–3.5k) to keep a
  [BLOCK_M, d] gradient tile on chip, so the two output products stay dense GEMMs.

Importing this module imports triton; `kernels.infonce` does so only when the triton backend runs.
Under TRITON_INTERPRET=1 (CPU tests) blocks are small and bf16 tiles are upcast before tl.dot,
because the interpreter's bf16 dot returns garbage (triton 3.9; fp16/fp32 are fine).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


# bf16/fp16 tiles: the fastest of `umarvel bench loss`'s sweep at B=16k, N=96k, d=1536 and 3584 on
# an H200 (docs/benchmarks.md); 128x256 tiles beat 128x64 by 1.3-1.45x there.
GPU_TILES = {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_D": 64, "num_warps": 8, "num_stages": 4}
# fp32 runs exact ("ieee") products on CUDA cores, unrolled per tile: with 128x256 tiles every new
# fp32 specialisation took many seconds to compile on the H200 (the compiled test run hit its cap);
# 128x64 compile in seconds (and fp32 is the tests' dtype, not training's).
FP32_GPU_TILES = {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_D": 64, "num_warps": 8, "num_stages": 3}
INTERPRETER_TILES = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": 16, "num_warps": 4, "num_stages": 1}


def _config(dtype: torch.dtype, tiles: dict | None = None) -> dict:
    """Tile sizes: `tiles` when given (`umarvel bench loss` times others through
    `losses.infonce.KernelTuning`), else 16s under the interpreter (several tiles on tiny test
    shapes), GPU-sized otherwise."""
    if tiles is not None:
        return dict(tiles)
    if _interpreting():
        return dict(INTERPRETER_TILES)
    return dict(FP32_GPU_TILES if dtype == torch.float32 else GPU_TILES)


@triton.jit
def _score_tile(
    q_ptr,
    c_ptr,
    offs_m,
    offs_n,
    m_mask,
    n_mask,
    D,
    stride_qm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """fp32 [BLOCK_M, BLOCK_N] tile of q · cᵀ (rows contiguous along d)."""
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        a = tl.load(
            q_ptr + offs_m[:, None].to(tl.int64) * stride_qm + offs_d[None, :],
            mask=m_mask[:, None] & d_mask[None, :],
            other=0.0,
        )
        b = tl.load(
            c_ptr + offs_n[:, None].to(tl.int64) * stride_cn + offs_d[None, :],
            mask=n_mask[:, None] & d_mask[None, :],
            other=0.0,
        )
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, tl.trans(b), acc, input_precision=PRECISION)
    return acc


@triton.jit
def _tile(
    q_ptr, c_ptr, s_ptr, offs_m, offs_n, m_mask, n_mask, D, stride_qm, stride_cn, stride_sm,
    FROM_SCORES: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """fp32 score tile: read from a [B, n] score block (FROM_SCORES) or computed from q and c."""
    if FROM_SCORES:
        s = tl.load(
            s_ptr + offs_m[:, None].to(tl.int64) * stride_sm + offs_n[None, :],
            mask=m_mask[:, None] & n_mask[None, :],
            other=0.0,
        ).to(tl.float32)
    else:
        s = _score_tile(
            q_ptr, c_ptr, offs_m, offs_n, m_mask, n_mask, D, stride_qm, stride_cn,
            BLOCK_M, BLOCK_N, BLOCK_D, UPCAST, PRECISION,
        )  # fmt: skip
    return s


@triton.jit
def _kept(
    offs_m,
    offs_n,
    m_mask,
    n_mask,
    labels,
    cid_ptr,
    qpos_ptr,
    P,
    stride_pm,
    stride_pp,
    HAS_IDS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """(kept [M, N] bool, is_positive [M, N] bool): in range and not another positive of the query."""
    is_pos = offs_n[None, :] == labels[:, None]
    keep = m_mask[:, None] & n_mask[None, :]
    if HAS_IDS:
        cid = tl.load(cid_ptr + offs_n, mask=n_mask, other=-2)
        hit = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
        for p in range(0, P):
            pid = tl.load(qpos_ptr + offs_m.to(tl.int64) * stride_pm + p * stride_pp, mask=m_mask, other=-1)
            same = (cid[None, :] == pid[:, None]) & (pid[:, None] >= 0)
            hit = hit | same.to(tl.int32)
        keep = keep & ((hit == 0) | is_pos)
    return keep, is_pos


@triton.jit
def _fwd_kernel(
    q_ptr,
    c_ptr,
    s_ptr,
    labels_ptr,
    cid_ptr,
    qpos_ptr,
    tau_ptr,
    lse_part_ptr,
    pos_part_ptr,
    B,
    N,
    D,
    P,
    per_split,
    stride_qm,
    stride_cn,
    stride_sm,
    stride_pm,
    stride_pp,
    HAS_IDS: tl.constexpr,
    FROM_SCORES: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    split = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < B
    labels = tl.load(labels_ptr + offs_m, mask=m_mask, other=-1)
    inv_tau = 1.0 / tl.load(tau_ptr).to(tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    pos = tl.zeros([BLOCK_M], dtype=tl.float32)
    n_begin = split * per_split
    n_end = tl.minimum(n_begin + per_split, N)
    for n0 in range(n_begin, n_end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < n_end
        s = _tile(
            q_ptr, c_ptr, s_ptr, offs_m, offs_n, m_mask, n_mask, D, stride_qm, stride_cn, stride_sm,
            FROM_SCORES, BLOCK_M, BLOCK_N, BLOCK_D, UPCAST, PRECISION,
        )  # fmt: skip
        logits = s * inv_tau
        keep, is_pos = _kept(
            offs_m, offs_n, m_mask, n_mask, labels, cid_ptr, qpos_ptr, P, stride_pm, stride_pp,
            HAS_IDS, BLOCK_M, BLOCK_N,
        )  # fmt: skip
        pos += tl.sum(tl.where(is_pos & keep, logits, 0.0), axis=1)
        logits = tl.where(keep, logits, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(logits, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(logits - m_safe[:, None]), axis=1)
        m_i = m_new
    # -inf when this split kept nothing for the row (log of a clamped sum: no log(0) evaluated)
    lse = tl.where(l_i > 0, m_i + tl.log(tl.maximum(l_i, 1e-30)), float("-inf"))
    out = split * B + offs_m
    tl.store(lse_part_ptr + out, lse, mask=m_mask)
    tl.store(pos_part_ptr + out, pos, mask=m_mask)


@triton.jit
def _grad_kernel(
    q_ptr,
    c_ptr,
    s_ptr,
    labels_ptr,
    cid_ptr,
    qpos_ptr,
    tau_ptr,
    lse_ptr,
    g_ptr,
    out_ptr,
    B,
    N,
    D,
    P,
    stride_qm,
    stride_cn,
    stride_sm,
    stride_pm,
    stride_pp,
    stride_om,
    HAS_IDS: tl.constexpr,
    FROM_SCORES: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = offs_m < B
    n_mask = offs_n < N
    labels = tl.load(labels_ptr + offs_m, mask=m_mask, other=-1)
    inv_tau = 1.0 / tl.load(tau_ptr).to(tl.float32)
    s = _tile(
        q_ptr, c_ptr, s_ptr, offs_m, offs_n, m_mask, n_mask, D, stride_qm, stride_cn, stride_sm,
        FROM_SCORES, BLOCK_M, BLOCK_N, BLOCK_D, UPCAST, PRECISION,
    )  # fmt: skip
    keep, is_pos = _kept(
        offs_m, offs_n, m_mask, n_mask, labels, cid_ptr, qpos_ptr, P, stride_pm, stride_pp,
        HAS_IDS, BLOCK_M, BLOCK_N,
    )  # fmt: skip
    lse = tl.load(lse_ptr + offs_m, mask=m_mask, other=0.0)
    g = tl.load(g_ptr + offs_m, mask=m_mask, other=0.0)
    p = tl.where(keep, tl.exp(s * inv_tau - lse[:, None]), 0.0)
    grad = (g * inv_tau)[:, None] * (p - tl.where(is_pos & keep, 1.0, 0.0))
    tl.store(
        out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :],
        grad.to(out_ptr.dtype.element_ty),
        mask=m_mask[:, None] & n_mask[None, :],
    )


def _flags(q: torch.Tensor) -> dict:
    return {
        "UPCAST": _interpreting() and q.dtype == torch.bfloat16,
        # fp32 inputs: exact fp32 products like torch's default matmul (not TF32)
        "PRECISION": "ieee" if q.dtype == torch.float32 else None,
    }


def _id_args(labels, cand_ids, query_pos_ids) -> tuple:
    """(cid, qpos, P, stride_pm, stride_pp, HAS_IDS); dummies when there are no ids."""
    if cand_ids is None or query_pos_ids is None:
        return labels, labels, 0, 0, 0, False
    qpos = query_pos_ids.contiguous()
    return cand_ids.contiguous(), qpos, qpos.shape[1], qpos.stride(0), qpos.stride(1), True


def _splits(b: int, n: int, cfg: dict, device: torch.device) -> int:
    """Candidate splits so that the forward grid has ~4 programs per SM even for small B."""
    n_blocks = triton.cdiv(n, cfg["BLOCK_N"])
    if _interpreting():
        return min(2, n_blocks)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    m_blocks = triton.cdiv(b, cfg["BLOCK_M"])
    return max(1, min(n_blocks, (4 * sms) // m_blocks))


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
    """(lse [B], positive logit [B]) in fp32; `chunk` is unused (the kernel streams all of c)."""
    del chunk
    return _stats(q, c, None, labels, tau, cand_ids, query_pos_ids, tiles)


def stats_from_scores(
    s: torch.Tensor,
    labels_local: torch.Tensor,
    tau: torch.Tensor,
    cand_ids_chunk: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
    tiles: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward_stats` of one chunk whose scores s [B, n] = q · c_chunkᵀ are already computed."""
    return _stats(None, None, s, labels_local, tau, cand_ids_chunk, query_pos_ids, tiles)


def _operands(q, c, s) -> tuple:
    """(q, c, s) and their row strides for a launch; the unused side gets a stand-in never read."""
    if s is None:
        return (q, c, q), (q.stride(0), c.stride(0), 0), q, c.shape[0], q.shape[1]
    return (s, s, s), (0, 0, s.stride(0)), s, s.shape[1], 0


def _stats(q, c, s, labels, tau, cand_ids, query_pos_ids, tiles) -> tuple[torch.Tensor, torch.Tensor]:
    ptrs, strides, ref, n, d = _operands(q, c, s)
    b = ref.shape[0]
    cfg = _config(ref.dtype, tiles)
    splits = _splits(b, n, cfg, ref.device)
    per_split = triton.cdiv(triton.cdiv(n, splits), cfg["BLOCK_N"]) * cfg["BLOCK_N"]
    splits = triton.cdiv(n, per_split)
    lse_part = torch.empty(splits, b, dtype=torch.float32, device=ref.device)
    pos_part = torch.empty(splits, b, dtype=torch.float32, device=ref.device)
    cid, qpos, p, spm, spp, has_ids = _id_args(labels, cand_ids, query_pos_ids)
    grid = (triton.cdiv(b, cfg["BLOCK_M"]), splits)
    _fwd_kernel[grid](
        *ptrs, labels.contiguous(), cid, qpos, tau, lse_part, pos_part,
        b, n, d, p, per_split, *strides, spm, spp,
        HAS_IDS=has_ids, FROM_SCORES=s is not None, **_flags(ref), **cfg,
    )  # fmt: skip
    return torch.logsumexp(lse_part, dim=0), pos_part.sum(0)


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
    """[B, n] dLoss/dscores of one candidate chunk, in q's dtype (the GEMMs that follow run in it)."""
    return _grad(q, c_chunk, None, labels_local, tau, cand_ids_chunk, query_pos_ids, lse, grad_rows, tiles)


def grad_from_scores(
    s: torch.Tensor,
    labels_local: torch.Tensor,
    tau: torch.Tensor,
    cand_ids_chunk: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
    lse: torch.Tensor,
    grad_rows: torch.Tensor,
    tiles: dict | None = None,
) -> torch.Tensor:
    """`grad_scores` of one chunk whose scores s [B, n] (contiguous) are already computed, written over s."""
    return _grad(None, None, s, labels_local, tau, cand_ids_chunk, query_pos_ids, lse, grad_rows, tiles)


def _grad(q, c, s, labels_local, tau, cand_ids, query_pos_ids, lse, grad_rows, tiles) -> torch.Tensor:
    ptrs, strides, ref, n, d = _operands(q, c, s)
    b = ref.shape[0]
    cfg = _config(ref.dtype, tiles)
    # from scores, each program reads its tile of s before writing the same tile: G overwrites s
    out = s if s is not None else torch.empty(b, n, dtype=ref.dtype, device=ref.device)
    cid, qpos, p, spm, spp, has_ids = _id_args(labels_local, cand_ids, query_pos_ids)
    grid = (triton.cdiv(b, cfg["BLOCK_M"]), triton.cdiv(n, cfg["BLOCK_N"]))
    _grad_kernel[grid](
        *ptrs, labels_local.contiguous(), cid, qpos, tau, lse, grad_rows, out,
        b, n, d, p, *strides, spm, spp, out.stride(0),
        HAS_IDS=has_ids, FROM_SCORES=s is not None, **_flags(ref), **cfg,
    )  # fmt: skip
    return out
