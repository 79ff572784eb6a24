"""`umarvel train --report-to tensorboard`: the training curves (loss, learning rate, temperature,
samples/s) as TensorBoard scalars under OUT/tensorboard/<stage>, beside train_log.jsonl.

Optional: it needs the `tensorboard` package (`pip install 'umarvel[tensorboard]'`), checked before
any training starts. Only the main process writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from umarvel_cli.errors import UmarvelError

CURVES = ("loss", "lr", "temperature", "samples_per_s")


def tensorboard_available() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardSink:
    """A trainer `on_step` hook factory: `for_stage(stage)` gives the hook of one stage."""

    def __init__(self, log_dir: str | Path) -> None:
        if not tensorboard_available():
            raise UmarvelError(
                "--report-to tensorboard needs the tensorboard package",
                field="--report-to",
                expected="pip install 'umarvel[tensorboard]', or --report-to none",
            )
        self.log_dir = Path(log_dir)
        self.writers: dict[str, Any] = {}

    def for_stage(self, stage: str) -> Callable[[int, dict[str, Any]], None]:
        from torch.utils.tensorboard import SummaryWriter

        writer = self.writers.setdefault(stage, SummaryWriter(log_dir=str(self.log_dir / stage)))

        def on_step(step: int, row: dict[str, Any]) -> None:
            for name in CURVES:
                if row.get(name) is not None:
                    writer.add_scalar(f"train/{name}", float(row[name]), step)
            writer.flush()

        return on_step

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
