"""Ranks as threads: what `torchrun` gives a stage (rank, world, barrier, broadcast), in one process."""

from __future__ import annotations

import threading
from collections.abc import Callable

from umarvel_cli.distributed import DistContext


def run_as_ranks(world: int, stage: Callable[[DistContext], object]) -> None:
    """Run `stage(ctx)` once per rank, each in a thread with a shared barrier and a broadcast from
    rank 0; re-raises the first error a rank hit (the others are released, not left waiting)."""
    barrier = threading.Barrier(world)
    box: dict[str, object] = {}
    errors: list[BaseException] = []

    def broadcast_from(rank: int) -> Callable[[object], object]:
        def broadcast(obj: object) -> object:
            if rank == 0:
                box["v"] = obj
            barrier.wait()
            return box["v"]

        return broadcast

    def worker(rank: int) -> None:
        try:
            stage(DistContext(rank, world, rank, barrier.wait, broadcast_from(rank)))
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
