"""Deterministic, resumable batch order for contrastive training.

The batches of an epoch are a pure function of (seed, epoch, group labels), so a resumed run jumps
straight to batch k of epoch e instead of replaying the stream (the "resume looks like a hang"
complaint of peers). Two modes:

- `mixed`: shuffle all examples and cut global batches;
- `task`: task-homogeneous batches (every batch from one group, e.g. one M-BEIR task), so in-batch
  negatives share the query's candidate modality. Each group is shuffled and cut into full batches;
  the leftovers of all groups are pooled, shuffled and cut into mixed batches, so nothing but the
  final partial batch of an epoch is dropped. The order of batches is shuffled.

A global batch is split into `world` contiguous slices, one per rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MODES = ("mixed", "task")


class ContrastiveBatchSampler:
    """Global batches of example indices, addressed by optimizer step (no state to replay)."""

    def __init__(
        self,
        groups: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int = 42,
        mode: str = "mixed",
        world: int = 1,
        rank: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown batching mode {mode!r}; expected one of {MODES}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if batch_size % world:
            raise ValueError(f"global batch size {batch_size} is not divisible by world size {world}")
        self.groups = np.asarray(groups, dtype=np.int64)
        if batch_size > len(self.groups):
            raise ValueError(f"batch size {batch_size} is larger than the data ({len(self.groups)} examples)")
        self.batch_size = batch_size
        self.seed = seed
        self.mode = mode
        self.world = world
        self.rank = rank
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """All global batches of `epoch`, in order (cached for the current epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        bs = self.batch_size
        if self.mode == "mixed":
            order = rng.permutation(len(self.groups))
            batches = [order[i : i + bs] for i in range(0, len(order) - bs + 1, bs)]
        else:
            batches, leftovers = [], []
            for g in np.unique(self.groups):
                members = np.flatnonzero(self.groups == g)
                members = members[rng.permutation(len(members))]
                full = len(members) - len(members) % bs
                batches += [members[i : i + bs] for i in range(0, full, bs)]
                leftovers.append(members[full:])
            rest = np.concatenate(leftovers)
            rest = rest[rng.permutation(len(rest))]
            batches += [rest[i : i + bs] for i in range(0, len(rest) - bs + 1, bs)]
            batches = [batches[i] for i in rng.permutation(len(batches))]
        self._cache = (epoch, batches)
        return batches

    def batches_per_epoch(self) -> int:
        """Constant over epochs: group sizes, not the shuffle, fix how many full batches there are."""
        return len(self.epoch_batches(0))

    def local_slice(self, batch: np.ndarray) -> np.ndarray:
        per = len(batch) // self.world
        return batch[self.rank * per : (self.rank + 1) * per]

    def global_batch(self, step: int) -> np.ndarray:
        """The global batch of optimizer step `step` (0-based, counted over epochs): a direct jump."""
        epoch, index = divmod(step, self.batches_per_epoch())
        return self.epoch_batches(epoch)[index]

    def local_batch(self, step: int) -> np.ndarray:
        """This rank's slice of step `step`'s global batch."""
        return self.local_slice(self.global_batch(step))

    def state_dict(self, step: int) -> dict[str, int | str]:
        """Position after `step` optimizer steps, with what fixes the order (checked on load)."""
        epoch, index = divmod(step, self.batches_per_epoch())
        return {
            "step": step,
            "epoch": epoch,
            "batch": index,
            "seed": self.seed,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "examples": len(self.groups),
        }

    def check_state(self, state: dict[str, int | str]) -> int:
        """The step to resume from; refuses a state written for another order."""
        for key, mine in (
            ("seed", self.seed),
            ("mode", self.mode),
            ("batch_size", self.batch_size),
            ("examples", len(self.groups)),
        ):
            if state.get(key) != mine:
                raise ValueError(f"sampler state has {key}={state.get(key)!r}, this run has {mine!r}")
        return int(state["step"])
