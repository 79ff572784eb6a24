"""InfoNCE over normalised embeddings with hard negatives and id-based false-negative exclusion (B11).

One function, several implementations behind `impl`:
- "triton": fused Triton kernels (CUDA; or CPU under TRITON_INTERPRET=1 for tests), O((B + N)·d) memory;
- "chunked": the pure-torch reference, memory-bounded by recomputation over candidate chunks;
- "hybrid": cuBLAS score products per candidate chunk, the Triton kernels for the rest (CUDA);
- "eager": gradients computed in the forward, one block of full score rows at a time (three
  products like "plain", memory of one [rows, N] block; `kernels.infonce_eager`);
- "plain": the unfused matmul + cross-entropy (materialises B × N; tests and benchmarks only);
- "auto": triton on CUDA when triton is installed, eager otherwise (on CPU eager is about as fast as
  plain and chunked up to 1.5x slower: docs/benchmarks.md). Triton also for small batches, where
  its launches make it slower than plain (a ~1 ms loss at B = 1k): its scores stay fp32 where plain
  rounds bf16 logits, and a loss step that short is nothing beside the model's.

Formula (the caller L2-normalises q and c; positives are given by index):

    logits_ij = (q_i · c_j) / temperature
    excluded_ij = j != labels_i and cand_ids_j ∈ query_pos_ids_i   (entries < 0 in query_pos_ids are padding)
    loss_i = logsumexp_{j not excluded} logits_ij − logits_i,labels_i

So every candidate sharing a content id with one of the query's positives (duplicates in up-sampled
data, other captions of the same image, other queries' hard negatives that are my positives) leaves
the denominator, while the labelled positive always stays. Several positives for one query are
expressed by several rows (one per positive, same query embedding, each other's ids in
query_pos_ids), so each row is a single-positive InfoNCE. Reduction: mean over rows, sum, or none.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kernels.infonce import info_nce_rows
from kernels.infonce_eager import info_nce_rows_eager
from umarvel_cli.errors import UmarvelError

IMPLS = ("auto", "plain", "chunked", "eager", "triton", "hybrid")
TILE_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_D", "num_warps", "num_stages")


@dataclass(frozen=True)
class KernelTuning:
    """Launch choices of the memory-bounded implementations for one call (None = the kernels' default).

    `chunk`: candidates per chunk (chunked and hybrid forward, every recomputing backward);
    `tiles`: the Triton tile sizes and launch options, all of `TILE_KEYS` (triton and hybrid).
    "plain" and "eager" take no tuning.
    """

    chunk: int | None = None
    tiles: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.chunk is not None and self.chunk < 1:
            raise UmarvelError(f"chunk {self.chunk} is not positive", field="chunk", expected=">= 1")
        if self.tiles is not None and set(self.tiles) != set(TILE_KEYS):
            raise UmarvelError(
                f"tiles name {sorted(self.tiles)}", field="tiles", expected=", ".join(TILE_KEYS)
            )


REDUCTIONS = ("mean", "sum", "none")


def triton_available() -> bool:
    """Triton is installed (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def resolve_impl(
    impl: str,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    impls: tuple[str, ...] = IMPLS,
    fallback: str = "eager",
) -> str:
    """The concrete implementation `impl` stands for among `impls` (auto → triton for CUDA
    fp32/fp16/bf16 when triton is installed, else `fallback`)."""
    if impl not in impls:
        raise UmarvelError(f"unknown loss impl {impl!r}", field="impl", expected=" | ".join(impls))
    if impl == "auto":
        fused = device.type == "cuda" and dtype in TRITON_DTYPES and triton_available()
        return "triton" if fused else fallback
    if impl in ("triton", "hybrid"):
        if dtype not in TRITON_DTYPES:
            raise UmarvelError(
                f"impl {impl!r} does not take {dtype}", field="impl", expected="fp32/fp16/bf16"
            )
        if not triton_available():
            raise UmarvelError(f"impl {impl!r} needs the triton package", expected="pip install triton")
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise UmarvelError(
                f"impl {impl!r} needs CUDA tensors (or TRITON_INTERPRET=1 for the CPU interpreter)",
                field="impl",
                expected="auto, eager or chunked on CPU",
            )
    return impl


def temperature_tensor(temperature: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A 0-dim fp32 tensor on `device`; a tensor keeps its autograd graph."""
    if isinstance(temperature, torch.Tensor):
        if temperature.numel() != 1:
            raise UmarvelError(
                f"temperature has {temperature.numel()} elements", field="temperature", expected="a scalar"
            )
        return temperature.to(device=device, dtype=torch.float32).reshape(())
    if not temperature > 0:
        raise UmarvelError(f"temperature {temperature} is not positive", field="temperature", expected="> 0")
    return torch.tensor(float(temperature), dtype=torch.float32, device=device)


def _check(
    q: torch.Tensor,
    c: torch.Tensor,
    labels: torch.Tensor,
    cand_ids: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
    reduction: str,
) -> None:
    if q.dim() != 2 or c.dim() != 2 or q.shape[1] != c.shape[1]:
        raise UmarvelError(
            f"embeddings have shapes {tuple(q.shape)} and {tuple(c.shape)}",
            field="q/c",
            expected="q [B, d] and c [N, d]",
        )
    if q.dtype != c.dtype:
        raise UmarvelError(f"q is {q.dtype} but c is {c.dtype}", field="q/c", expected="one dtype")
    b, n = q.shape[0], c.shape[0]
    if b == 0 or n == 0:
        raise UmarvelError("empty batch", field="q/c", expected="at least one query and one candidate")
    if labels.shape != (b,) or labels.dtype != torch.int64:
        raise UmarvelError(
            f"labels have shape {tuple(labels.shape)} and dtype {labels.dtype}",
            field="labels",
            expected=f"int64 [{b}]",
        )
    if bool(((labels < 0) | (labels >= n)).any()):  # one host sync
        raise UmarvelError("a label is out of range", field="labels", expected=f"indices in [0, {n})")
    if (cand_ids is None) != (query_pos_ids is None):
        raise UmarvelError(
            "cand_ids and query_pos_ids go together", field="cand_ids", expected="both or neither"
        )
    if cand_ids is not None and query_pos_ids is not None:
        if cand_ids.shape != (n,) or cand_ids.dtype != torch.int64:
            raise UmarvelError(
                f"cand_ids have shape {tuple(cand_ids.shape)} and dtype {cand_ids.dtype}",
                field="cand_ids",
                expected=f"int64 [{n}]",
            )
        if query_pos_ids.dim() != 2 or query_pos_ids.shape[0] != b or query_pos_ids.dtype != torch.int64:
            raise UmarvelError(
                f"query_pos_ids have shape {tuple(query_pos_ids.shape)} and dtype {query_pos_ids.dtype}",
                field="query_pos_ids",
                expected=f"int64 [{b}, P] padded with -1",
            )
    if reduction not in REDUCTIONS:
        raise UmarvelError(
            f"unknown reduction {reduction!r}", field="reduction", expected=" | ".join(REDUCTIONS)
        )


def _plain_rows(
    q: torch.Tensor,
    c: torch.Tensor,
    labels: torch.Tensor,
    tau: torch.Tensor,
    cand_ids: torch.Tensor | None,
    query_pos_ids: torch.Tensor | None,
) -> torch.Tensor:
    """Unfused: full B × N logits, an explicit B × N exclusion mask, then cross-entropy."""
    logits = (q @ c.T) / tau
    if cand_ids is not None and query_pos_ids is not None:
        hit = (cand_ids[None, :, None] == query_pos_ids[:, None, :]) & (query_pos_ids[:, None, :] >= 0)
        excl = hit.any(-1)
        excl[torch.arange(q.shape[0], device=q.device), labels] = False
        logits = logits.masked_fill(excl, float("-inf"))
    return F.cross_entropy(logits, labels, reduction="none")


def info_nce_loss(
    q: torch.Tensor,
    c: torch.Tensor,
    labels: torch.Tensor,
    temperature: float | torch.Tensor,
    cand_ids: torch.Tensor | None = None,
    query_pos_ids: torch.Tensor | None = None,
    reduction: str = "mean",
    impl: str = "auto",
    tuning: KernelTuning | None = None,
) -> torch.Tensor:
    """InfoNCE of queries q [B, d] against candidates c [N, d]; labels [B] index each query's positive.

    `temperature` is a float or a 0-dim tensor (e.g. `log_tau.exp().clamp(0.01, 1)`); gradients reach
    q, c and a tensor temperature. `cand_ids` [N] / `query_pos_ids` [B, P] (int64, pad -1, see
    `umarvel_cli.losses.ids`) exclude false negatives without a B × N mask (except in impl "plain").
    `tuning`: chunk and tile overrides for this call (module docstring).
    Returns fp32: a scalar for "mean"/"sum", [B] for "none".
    """
    _check(q, c, labels, cand_ids, query_pos_ids, reduction)
    which = resolve_impl(impl, q.device, q.dtype)
    tau = temperature_tensor(temperature, q.device)
    if which == "plain":
        rows = _plain_rows(q, c, labels, tau, cand_ids, query_pos_ids).float()
    elif which == "eager":
        rows = info_nce_rows_eager(q, c, labels, tau, cand_ids, query_pos_ids)
    else:
        tuning = tuning or KernelTuning()
        rows = info_nce_rows(
            q,
            c,
            labels,
            tau,
            cand_ids,
            query_pos_ids,
            backend={"chunked": "torch"}.get(which, which),
            chunk=tuning.chunk,
            tiles=tuning.tiles,
        )
    if reduction == "mean":
        return rows.mean()
    if reduction == "sum":
        return rows.sum()
    return rows
