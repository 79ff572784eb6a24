"""The embed benchmark's two paths agree, and its shared-work floor times real work."""

from __future__ import annotations

import numpy as np
import torch

from umarvel_cli.bench.embed import bench_records, core_scaling, naive_encode, shared_floor, stock_processor


def test_naive_loop_and_ours_give_the_same_vectors(tiny_embedders, tmp_path):
    embedder = tiny_embedders["tiny-qwen2-vl"]
    records = bench_records(12, tmp_path / "images", seed=3)
    assert any(r.image is not None for r in records) and any(r.image is None for r in records)
    naive, padded = naive_encode(embedder, records, 5, stock_processor(embedder))
    ours = embedder.encode(records, batch_size=5, role="candidate")
    assert naive.shape == ours.shape == (12, embedder.dim)
    np.testing.assert_allclose(naive, ours, atol=1e-5)
    assert padded >= sum(len(embedder.formatter.encode(r, "candidate").input_ids) for r in records)


def test_shared_floor_times_decode_resize_and_model(tiny_embedders, tmp_path):
    embedder = tiny_embedders["tiny-qwen2-vl"]
    records = bench_records(8, tmp_path / "images", seed=4)
    floor = shared_floor(embedder, records, 4, reps=1)
    assert set(floor) == {"decode", "resize", "model"}
    assert all(v > 0 for v in floor.values())


def test_core_scaling_times_the_model_on_one_and_several_threads(tiny_embedders, tmp_path):
    embedder = tiny_embedders["tiny-qwen2-vl"]
    records = bench_records(8, tmp_path / "images", seed=5)
    threads = torch.get_num_threads()
    scaling = core_scaling(embedder, records, 2, workers=2, reps=1)
    assert 0.2 < scaling < 4.0  # a ratio of two timings of the same work, not a fixed number
    assert torch.get_num_threads() == threads  # the one-thread setting is undone
