"""Training checkpoints: trainable weights, optimizer, scheduler, sampler position and RNG states.

Each checkpoint is a folder `step-00000120/` written under a temporary name and renamed when
complete, so a kill never leaves a half checkpoint that resume would pick. RNG states are saved
per rank (`rng-<rank>.pt`); everything else is identical on every rank and written by rank 0.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from umarvel_cli import distributed as D

STEP_RE = re.compile(r"^step-(\d{8})$")


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class CheckpointStore:
    """The `checkpoints/` folder of a stage output."""

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def complete(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and STEP_RE.match(p.name))

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Collective under torchrun: every rank calls it (each adds its RNG state)."""
        final = self.root / f"step-{step:08d}"
        tmp = self.root / f"step-{step:08d}.tmp"
        if D.is_main():
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        D.barrier()
        torch.save(rng_state(), tmp / f"rng-{D.rank()}.pt")
        D.barrier()
        if D.is_main():
            torch.save(state, tmp / "state.pt")
            (tmp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in self.complete()[: -self.keep]:
                shutil.rmtree(old)
        D.barrier()
        return final

    def load(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state, this rank's RNG state); refuses a checkpoint from another world size."""
        rng_file = path / f"rng-{D.rank()}.pt"
        if not rng_file.is_file():
            raise FileNotFoundError(f"{rng_file} missing: checkpoint written with another number of ranks")
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        return state, torch.load(rng_file, weights_only=False)

    def clear(self) -> None:
        if D.is_main() and self.root.exists():
            shutil.rmtree(self.root)
        D.barrier()
