"""Running encoded items through a model in batches: planning, collating ahead, CPU workers, OOM back-off.

Model-agnostic: the embedder runs its `forward` through `run_batches`, and so can a reranker's
scorer. Items need only `length` and `num_patches` (an `EncodedInput`); a batch is a list of item
indices, and every item's output row lands at its own index, so results come back in input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from itertools import islice
from typing import Any, Protocol

import numpy as np
import torch

from umarvel_cli.errors import UmarvelError

DEFAULT_TOKENS_PER_ITEM = 128
MAX_COLLATE_AHEAD = 8
OOM_HINT = "a smaller max_pixels or text_token_budget in umarvel.json"


class Batchable(Protocol):
    @property
    def length(self) -> int: ...

    @property
    def num_patches(self) -> int: ...


def collate_ahead() -> int:
    """Batches collated in background threads while the GPU runs one (image decoding releases the GIL)."""
    return max(1, min(MAX_COLLATE_AHEAD, (os.cpu_count() or 2) - 1))


def to_device(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Host → GPU through pinned memory without waiting for the GPU (a plain copy syncs the stream,
    which would leave the GPU idle while the next batch is launched); anything else as `.to`."""
    if dev.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


def bucket_order(items: Sequence[Batchable]) -> list[int]:
    """Indices sorted so batches hold similar lengths and image sizes (biggest first: OOM shows early)."""
    return sorted(range(len(items)), key=lambda i: (-items[i].length, -items[i].num_patches, i))


def plan_batches(
    items: Sequence[Batchable], batch_size: int, max_tokens: int | None = None, packed: bool = False
) -> list[list[int]]:
    """Length-bucketed batches: at most `batch_size` items and `max_tokens` tokens each.

    Items are taken longest first, so a padded batch's size is its first item's length times its
    count; the token cap makes long items travel in small batches (little padding, bounded memory)
    and short ones in full batches. `packed` (sequences concatenated in one row, `models/packing.py`):
    the cap is on the row's real tokens, the sum of the lengths (an item longer than the cap goes alone).
    """
    max_tokens = max_tokens if max_tokens is not None else batch_size * DEFAULT_TOKENS_PER_ITEM
    batches: list[list[int]] = []
    current: list[int] = []
    longest = tokens = 0
    for i in bucket_order(items):
        n = items[i].length
        size = tokens + n if packed else (len(current) + 1) * longest
        if current and (len(current) >= batch_size or size > max_tokens):
            batches.append(current)
            current = []
            tokens = 0
        if not current:
            longest = n
        current.append(i)
        tokens += n
    if current:
        batches.append(current)
    return batches


def run_batches(
    items: Sequence[Any],
    batches: list[list[int]],
    collate: Callable[[list[Any]], Any],
    run: Callable[[Any], torch.Tensor],
    out: np.ndarray,
    workers: int = 1,
    ahead: int = 0,
    on_batch: Callable[[int], None] | None = None,
    oom_hint: str = OOM_HINT,
) -> np.ndarray:
    """`out[i]` = item i's row of `run(collate(batch))` for every batch; returns `out`.

    `workers` > 1 (CPU): that many batches run at once (`run_parallel`). Otherwise one at a time
    (`run_in_order`), the next `ahead` batches collating in background threads, with the CUDA
    out-of-memory back-off. `on_batch(n)` is called as each batch of n items is done.
    """

    def done(idx: list[int], result: torch.Tensor) -> None:
        out[idx] = result.cpu().numpy()
        if on_batch is not None:
            on_batch(len(idx))

    if workers > 1:

        def job(idx: list[int]) -> None:
            out[idx] = run(collate([items[i] for i in idx])).cpu().numpy()

        run_parallel(batches, job, workers, on_batch)
    else:
        run_in_order(batches, lambda idx: collate([items[i] for i in idx]), run, done, ahead, oom_hint)
    return out


def run_parallel(
    batches: list[list[int]],
    job: Callable[[list[int]], None],
    workers: int,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """CPU: `workers` threads each run whole batches (torch ops release the GIL), each with
    torch threads // workers intra-op threads: a small model's ops are too small to keep several
    cores busy alone, and one batch's image decoding and collation then runs beside another's compute."""
    threads = torch.get_num_threads()

    def run_one(idx: list[int]) -> list[int]:
        job(idx)
        return idx

    # worker threads take their intra-op thread count from this setting when they first run an op
    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_one, idx) for idx in batches]
            try:
                for future in as_completed(futures):
                    idx = future.result()
                    if on_batch is not None:
                        on_batch(len(idx))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        torch.set_num_threads(threads)


def run_in_order(
    batches: list[list[int]],
    collate: Callable[[list[int]], Any],
    launch: Callable[[Any], Any],
    finish: Callable[[list[int], Any], None],
    ahead: int = 0,
    oom_hint: str = OOM_HINT,
) -> None:
    """One batch at a time (GPU), the next `ahead` batches collating meanwhile.

    `launch(batch)` queues the model on a batch and returns its (device) result; `finish(idx, result)`
    is called once the next batch is launched, so reading results back never leaves the GPU idle.
    On CUDA out-of-memory the failing batch is split in two and retried; at one item it is an error.
    """
    queue = deque(batches)
    pending: dict[tuple[int, ...], Future] = {}
    launched: list[tuple[list[int], Any]] = []  # results still on the device

    def collated(idx: list[int]) -> Any:
        future = pending.pop(tuple(idx), None)
        return future.result() if future is not None else collate(idx)

    def read_back() -> None:
        while launched:
            finish(*launched.pop())

    with ThreadPoolExecutor(max_workers=max(1, ahead)) as pool:
        while queue:
            idx = queue.popleft()
            for nxt in islice(queue, ahead):  # keep the next `ahead` batches collating
                if tuple(nxt) not in pending:
                    pending[tuple(nxt)] = pool.submit(collate, nxt)
            batch = collated(idx)
            try:
                result = launch(batch)
            except torch.cuda.OutOfMemoryError as e:
                if len(idx) == 1:
                    raise UmarvelError("out of GPU memory with batch size 1", expected=oom_hint) from e
                del batch
                torch.cuda.empty_cache()
                half = len(idx) // 2
                queue.extendleft([idx[half:], idx[:half]])
                continue
            read_back()
            launched.append((idx, result))
        read_back()
