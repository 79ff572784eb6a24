"""The batch sampler: deterministic, resumable by step, task-homogeneous when asked, split by rank."""

from __future__ import annotations

import numpy as np
import pytest

from umarvel_cli.training.samplers import ContrastiveBatchSampler


def test_mixed_batches_cover_the_data_once_per_epoch_and_drop_only_the_tail():
    s = ContrastiveBatchSampler(np.zeros(10, dtype=int), batch_size=3, seed=1)
    assert s.batches_per_epoch() == 3
    seen = np.concatenate([s.global_batch(k) for k in range(3)])
    assert len(set(seen.tolist())) == 9 and all(0 <= i < 10 for i in seen)
    # epoch 2 is another order of the same data
    assert not np.array_equal(np.concatenate(s.epoch_batches(0)), np.concatenate(s.epoch_batches(1)))
    assert np.array_equal(s.global_batch(3), s.epoch_batches(1)[0])


def test_same_seed_same_order_and_direct_jump():
    groups = np.repeat([0, 1, 2], [7, 5, 4])
    a = ContrastiveBatchSampler(groups, batch_size=4, seed=7, mode="task")
    b = ContrastiveBatchSampler(groups, batch_size=4, seed=7, mode="task")
    c = ContrastiveBatchSampler(groups, batch_size=4, seed=8, mode="task")
    order_a = [a.global_batch(k).tolist() for k in range(10)]
    assert order_a == [b.global_batch(k).tolist() for k in range(9, -1, -1)][::-1]  # any access order
    assert order_a != [c.global_batch(k).tolist() for k in range(10)]


def test_task_mode_makes_homogeneous_batches_and_pools_leftovers():
    groups = np.repeat([0, 1, 2], [7, 5, 4])  # full batches of 4: one each; leftovers 3 + 1 + 0 -> one mixed
    s = ContrastiveBatchSampler(groups, batch_size=4, seed=0, mode="task")
    batches = s.epoch_batches(0)
    assert len(batches) == 4
    kinds = sorted(len(set(groups[b].tolist())) for b in batches)
    assert kinds == [1, 1, 1, 2]  # three single-task batches, one pooled batch (tasks 0 and 1)
    assert len(set(np.concatenate(batches).tolist())) == 16


def test_ranks_get_disjoint_contiguous_slices():
    groups = np.zeros(12, dtype=int)
    r0 = ContrastiveBatchSampler(groups, batch_size=6, seed=3, world=2, rank=0)
    r1 = ContrastiveBatchSampler(groups, batch_size=6, seed=3, world=2, rank=1)
    for k in range(4):
        full = r0.global_batch(k)
        assert np.array_equal(np.concatenate([r0.local_batch(k), r1.local_batch(k)]), full)


def test_state_round_trip_and_mismatch():
    s = ContrastiveBatchSampler(np.zeros(10, dtype=int), batch_size=2, seed=5)
    state = s.state_dict(7)
    assert state["epoch"] == 1 and state["batch"] == 2
    assert s.check_state(state) == 7
    other = ContrastiveBatchSampler(np.zeros(10, dtype=int), batch_size=2, seed=6)
    with pytest.raises(ValueError, match="seed"):
        other.check_state(state)


def test_bad_arguments():
    with pytest.raises(ValueError, match="larger than the data"):
        ContrastiveBatchSampler(np.zeros(3, dtype=int), batch_size=4)
    with pytest.raises(ValueError, match="divisible"):
        ContrastiveBatchSampler(np.zeros(9, dtype=int), batch_size=3, world=2)
    with pytest.raises(ValueError, match="mode"):
        ContrastiveBatchSampler(np.zeros(9, dtype=int), batch_size=3, mode="nope")
