"""Which share of the items a process encodes, and how processes wait for each other.

Under `torchrun` every rank takes the items whose id hashes to it (deterministic, independent of
order and batch size), so a multi-GPU run produces exactly the vectors of a single-process run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def rank_of(item_id: str, world_size: int) -> int:
    """The rank that encodes `item_id` (stable hash, same on every machine)."""
    digest = hashlib.blake2b(item_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % world_size


@dataclass
class DistContext:
    """Rank, world size and the two collective operations `embed` needs."""

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
        """Single process, or the torchrun process group (initialised here when needed)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)

        def broadcast(obj: Any) -> Any:
            box = [obj]
            dist.broadcast_object_list(box, src=0)
            return box[0]

        return cls(dist.get_rank(), dist.get_world_size(), local, dist.barrier, broadcast)
