"""Learning-rate schedule: linear warmup, then cosine decay to zero (or constant)."""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(total_steps * warmup_ratio)


def lr_lambda(total_steps: int, warmup: int, kind: str = "cosine") -> Callable[[int], float]:
    """Multiplier of the base LR at optimizer step `step` (0-based): the first step already learns."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
