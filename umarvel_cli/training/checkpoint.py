"""Training checkpoints: trainable weights, optimizer, scheduler, sampler position and RNG states.

Each checkpoint is a folder `step-00000120/` written under a unique temporary name and renamed when
complete, so a kill never leaves a half checkpoint that resume would pick. RNG states are saved
per rank (`rng-<rank>.pt`); everything else is identical on every rank and written by rank 0.
Everything is stored as tensors, numbers and strings and read back with `weights_only=True`: a
pickle planted in a checkpoint folder is refused, never executed.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from umarvel_cli import distributed as D
from umarvel_cli.artifacts.atomic import create_temp_dir, remove_stale_temps, replace_into
from umarvel_cli.errors import UmarvelError

STEP_RE = re.compile(r"^step-(\d{8})$")


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain numbers (loadable with weights_only=True)."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _safe_load(path: Path) -> Any:
    """`torch.load` that only rebuilds tensors and plain containers (no code from a pickle)."""
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning is noise: it is refused anyway
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise UmarvelError(
            f"checkpoint file refused: not a tensors-only file ({str(e).splitlines()[0][:160]})",
            file=path,
            expected="a checkpoint written by umarvel; delete the checkpoints/ folder to start over",
        ) from None


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
        tmp = None
        if D.is_main():
            self.root.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.root)
            tmp = create_temp_dir(final)
        tmp = Path(D.broadcast_object(str(tmp))) if D.is_distributed() else tmp
        D.barrier()
        torch.save(rng_state(), tmp / f"rng-{D.rank()}.pt")
        D.barrier()
        if D.is_main():
            torch.save(state, tmp / "state.pt")
            (tmp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=2) + "\n")
            replace_into(tmp, final)
            for old in self.complete()[: -self.keep]:
                shutil.rmtree(old)
        D.barrier()
        return final

    def load(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state, this rank's RNG state); refuses a checkpoint from another world size."""
        rng_file = path / f"rng-{D.rank()}.pt"
        if not rng_file.is_file():
            raise UmarvelError("missing: checkpoint written with another number of ranks", file=rng_file)
        return _safe_load(path / "state.pt"), _safe_load(rng_file)

    def clear(self) -> None:
        if D.is_main() and self.root.exists():
            shutil.rmtree(self.root)
        D.barrier()
