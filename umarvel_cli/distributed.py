"""Cross-process helpers for torchrun (training and embedding): rank/world, the process group,
a differentiable all-gather, gradient all-reduce, and which rank embeds an item.

The gradient contract (the released code's B15 is the 1/world_size error this avoids): every rank
computes the loss of its *local* queries against the *gathered* candidates, as a sum divided by the
global number of queries; the gather's backward sums the gradient that every rank sends to each
shard; trainable gradients are then all-reduced with a SUM. The result is exactly the gradient of
the single-process loss over the whole global batch. Everything degrades to no-ops in one process.

Embedding shards items by a stable hash of their id (`rank_of`), so a multi-GPU run produces exactly
the vectors of a single-process run; `DistContext` hands `embed` its rank and collectives (tests
pass threads in their place).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); True when this started one.

    Each rank's CUDA device is its LOCAL_RANK, set whether or not the group already existed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    if dist.is_available() and dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _gather_sizes(n: int, device: torch.device) -> list[int]:
    t = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [int(x.item()) for x in out]


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums each shard's gradient over ranks and hands back the local one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        sizes = _gather_sizes(x.shape[0], x.device)
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes = sizes
        ctx.rank = rank()
        return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)], dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every rank along dim 0 (rank order); gradients reach the local shard.

    Shards may differ in length. In one process this returns `x` itself.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every rank (ids, labels): no gradient."""
    if not is_distributed():
        return x
    with torch.no_grad():
        sizes = _gather_sizes(x.shape[0], x.device)
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)], dim=0)


def shard_offset(n_local: int, device: torch.device | None = None) -> tuple[int, int]:
    """(start of this rank's rows in the gathered order, total rows over all ranks)."""
    if not is_distributed():
        return 0, n_local
    sizes = _gather_sizes(n_local, device or torch.device("cpu"))
    return sum(sizes[: rank()]), sum(sizes)


def all_reduce_sum(value: float, device: torch.device | None = None) -> float:
    """Sum a Python number over ranks (for logging)."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device or torch.device("cpu"))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], bucket_bytes: int = 32 << 20) -> None:
    """SUM the gradients of `params` over ranks, in flattened buckets (one code path for plain,
    accumulated and chunked steps, which a DDP wrapper's hooks would each need special-casing for)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0
    for g in grads:
        bucket.append(g)
        size += g.numel() * g.element_size()
        if size >= bucket_bytes:
            _reduce_bucket(bucket)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket)


def _reduce_bucket(bucket: list[torch.Tensor]) -> None:
    by_dtype: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for g in bucket:
        by_dtype.setdefault((g.dtype, g.device), []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in group:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def broadcast_object(obj: object, src: int = 0) -> object:
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def rank_of(item_id: str, world_size: int) -> int:
    """The rank that embeds `item_id` (stable hash, same on every machine, independent of order)."""
    digest = hashlib.blake2b(item_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % world_size


@dataclass
class DistContext:
    """Rank, world size and the two collectives `embed` needs, as values a test can replace."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    barrier: Callable[[], None] = field(default=lambda: None)
    broadcast: Callable[[Any], Any] = field(default=lambda obj: obj)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        """Single process, or the torchrun process group (joined here when needed)."""
        init_from_env()
        if not is_distributed():
            return cls()
        return cls(rank(), world_size(), local_rank(), barrier, broadcast_object)
