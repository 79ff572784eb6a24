"""The ONE seeded per-task sampler every stage that takes a share of the queries calls (rerank score,
mining, distillation).

The released code had two different 10% samplers writing overlapping files (B16); here a share is a
pure function of (ids, their tasks, share, seed): each task's queries are drawn with a generator
seeded by (seed, task name), so adding or removing another task's queries leaves a task's sample as
it was, and the sample keeps the input order.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from umarvel_cli.errors import UmarvelError


def check_share(share: float, option: str = "--sample") -> None:
    if not 0.0 < share <= 1.0:
        raise UmarvelError(f"share {share} is not in (0, 1]", field=option, expected="e.g. 0.1 for 10%")


def sample_per_task(
    ids: Sequence[str], task_of: Mapping[str, str], share: float, seed: int = 42
) -> list[str]:
    """`share` of every task's ids (floor, at least one per task), drawn with one seed; input order kept.

    Duplicated ids (an up-sampled file) count as rows, as in the released sampler.
    """
    check_share(share)
    by_task: dict[str, list[int]] = {}
    for i, q in enumerate(ids):
        if q not in task_of:
            raise UmarvelError(f"query {q!r} has no task", field="qid", expected="ids of the queries table")
        by_task.setdefault(task_of[q], []).append(i)
    keep: list[int] = []
    for task, rows in by_task.items():
        n = max(1, int(len(rows) * share + 1e-9))
        rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        keep += [rows[j] for j in rng.choice(len(rows), size=n, replace=False)]
    return [ids[i] for i in sorted(keep)]
