"""Distillation targets from a teacher table: each sampled query's top-k with fused scores F.

F = cosine + w * P(Yes), w per task (`configs/train_distill.yaml`: 1.0, except mscoco_task0 0.5 and
mscoco_task3 0.1, spec §6.4), each candidate with its own cosine. Positives in the list stay (as
released). The distillation loss reads `teacher_scores = F / 2` and divides by the detached
temperature itself (`losses.distill_kl`), which makes F/2 the "alpha = 0.5" linear fusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from umarvel_cli.errors import UmarvelError
from umarvel_cli.reranking.fusion import check_weight, teacher_fused

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "train_distill.yaml"


def fusion_weights(path: str | Path = CONFIG) -> dict[str, float]:
    """The per-task fusion weights ("default" for the tasks not named)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UmarvelError(f"unreadable config ({e})", file=path) from e
    weights = data.get("fusion_weights")
    if not isinstance(weights, dict) or not all(isinstance(v, int | float) for v in weights.values()):
        raise UmarvelError(
            "no fusion_weights mapping", file=path, field="fusion_weights", expected="task: number"
        )
    weights = {str(k): float(v) for k, v in weights.items()}
    check_weight(weights)
    return weights


@dataclass
class DistillList:
    """One query's candidates for distillation, best fused first."""

    qid: str
    dids: list[str]
    fused: np.ndarray  # float32 [K]

    @property
    def teacher_scores(self) -> np.ndarray:
        """What the KL loss reads as teacher logits before the temperature: F / 2."""
        return self.fused / 2


def distill_lists(
    teacher: pa.Table, task_of: Mapping[str, str], weights: Mapping[str, float], topk: int = 50
) -> dict[str, DistillList]:
    """Per query of the teacher table: its first `topk` candidates by F, each F from its own cosine."""
    check_weight(dict(weights))
    table = teacher.sort_by([("qid", "ascending"), ("rank", "ascending"), ("did", "ascending")])
    qids = table.column("qid").to_pylist()
    unknown = next((q for q in qids if q not in task_of), None)
    if unknown is not None:
        raise UmarvelError(f"teacher query {unknown!r} is not in the tables", field="qid")
    fused = teacher_fused(table, weights, task_of)
    grouped: dict[str, list[tuple[str, float]]] = {}
    for q, d, f in zip(qids, table.column("did").to_pylist(), fused.tolist(), strict=True):
        grouped.setdefault(q, []).append((d, f))
    out = {}
    for q, items in grouped.items():
        items = sorted(items, key=lambda x: -x[1])[:topk]  # stable: equal F keep the retriever's order
        out[q] = DistillList(q, [d for d, _ in items], np.array([f for _, f in items], dtype=np.float32))
    return out
