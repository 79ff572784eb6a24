"""The options of `umarvel mine`, validated before anything is written (the manifest's params)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from umarvel_cli.data.mbeir.tasks import MBEIRSpec, load_mbeir_spec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining.filters import SAMPLES, FilterSettings

POOLS = ("local", "global")


@dataclass(frozen=True)
class MineSettings:
    """Every option that changes the mined rows (the manifest's params)."""

    split: str = "train"
    pool: str = "local"
    topk: int = 100
    filters: FilterSettings = field(default_factory=FilterSettings)
    random_tasks: tuple[str, ...] = ()
    seed: int = 0

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["filters"]["rank_range"] = list(self.filters.rank_range)
        d["random_tasks"] = list(self.random_tasks)
        return d


def parse_range(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text or "")
    if m is None:
        raise UmarvelError(
            f"--range {text!r} is not a rank window", field="--range", expected="A-B, e.g. 1-100"
        )
    lo, hi = int(m.group(1)), int(m.group(2))
    if lo < 1:
        raise UmarvelError(f"--range {text!r} starts below rank 1", field="--range", expected="ranks from 1")
    if lo > hi:
        raise UmarvelError(f"--range {text!r} is inverted (empty)", field="--range", expected="A <= B")
    return lo, hi


def optional_number(text: str, option: str) -> float | None:
    """A filter threshold from the command line: a number, or `off` for no such filter."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise UmarvelError(
            f"{option} {text!r} is not a number", field=option, expected="a number or off"
        ) from None


def make_settings(
    *,
    split: str = "train",
    pool: str = "local",
    topk: int = 100,
    num_negatives: int = 5,
    rank_range: str = "1-100",
    margin: float | None = FilterSettings.margin,
    max_score_ratio: float | None = FilterSettings.max_score_ratio,
    max_score: float | None = FilterSettings.max_score,
    same_modality: bool = False,
    sample: str = "top",
    random_tasks: str | list[str] | tuple[str, ...] = (),
    seed: int = 0,
    spec: MBEIRSpec | None = None,
) -> MineSettings:
    """Validate the options (nothing is written before this passes)."""
    spec = spec or load_mbeir_spec()
    if pool not in POOLS:
        raise UmarvelError(f"unknown --pool {pool!r}", field="--pool", expected=" | ".join(POOLS))
    if topk < 1:
        raise UmarvelError(f"--topk must be >= 1, not {topk}", field="--topk")
    lo, hi = parse_range(rank_range)
    if hi > topk:
        raise UmarvelError(
            f"--range {lo}-{hi} reaches past --topk {topk}", field="--range", expected=f"B <= {topk}"
        )
    if num_negatives < 1:
        raise UmarvelError(f"--num-negatives must be >= 1, not {num_negatives}", field="--num-negatives")
    if num_negatives > hi - lo + 1:
        raise UmarvelError(
            f"--num-negatives {num_negatives} is more than the window {lo}-{hi} can give ({hi - lo + 1})",
            field="--num-negatives",
            expected=f"at most {hi - lo + 1}",
        )
    if max_score_ratio is not None and not 0 < max_score_ratio <= 1:
        raise UmarvelError(
            f"--max-score-ratio {max_score_ratio} is outside (0, 1]",
            field="--max-score-ratio",
            expected="0 < r <= 1",
        )
    if sample not in SAMPLES:
        raise UmarvelError(f"unknown --sample {sample!r}", field="--sample", expected=" | ".join(SAMPLES))
    if isinstance(random_tasks, str):
        random_tasks = [t.strip() for t in random_tasks.split(",") if t.strip()]
    unknown = [t for t in random_tasks if t not in spec.order]
    if unknown:
        raise UmarvelError(
            f"--random-tasks: unknown task {unknown[0]!r}",
            field="--random-tasks",
            expected="task stems like mscoco_task0",
        )
    return MineSettings(
        split=split,
        pool=pool,
        topk=topk,
        filters=FilterSettings(
            num_negatives=num_negatives,
            rank_range=(lo, hi),
            margin=margin,
            max_score_ratio=max_score_ratio,
            max_score=max_score,
            same_modality=same_modality,
            sample=sample,
        ),
        random_tasks=tuple(dict.fromkeys(random_tasks)),
        seed=seed,
    )
