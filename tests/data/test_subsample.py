"""The one seeded per-task sampler: the same share of every task, input order kept, per-task draws."""

from __future__ import annotations

import pytest

from umarvel_cli.data.subsample import sample_per_task
from umarvel_cli.errors import UmarvelError


def test_one_seeded_sampler_takes_the_same_share_of_every_task():
    ids = [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(10)] + ["c0"]
    task_of = {q: q[0] for q in ids}
    picked = sample_per_task(ids, task_of, 0.1, seed=42)
    assert [sum(q[0] == t for q in picked) for t in "abc"] == [4, 1, 1]  # floor, at least one per task
    assert picked == [q for q in ids if q in set(picked)]  # input order kept
    assert picked == sample_per_task(ids, task_of, 0.1, seed=42)
    assert picked != sample_per_task(ids, task_of, 0.1, seed=7)
    alone = sample_per_task([q for q in ids if q[0] == "a"], task_of, 0.1, seed=42)
    assert alone == [q for q in picked if q[0] == "a"]  # a task's draw ignores the other tasks
    with pytest.raises(UmarvelError, match=r"share 0 is not in \(0, 1\]"):
        sample_per_task(ids, task_of, 0, seed=42)
