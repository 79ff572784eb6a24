"""The embed benchmark's two paths agree, and its shared-work floor times real work."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from umarvel_cli.bench.embed import (
    _our_batches,
    _run_model,
    bench_records,
    core_scaling,
    naive_encode,
    shared_floor,
    stock_processor,
)


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


def test_core_scaling_runs_the_same_model_work_on_one_and_several_threads(tiny_embedders, tmp_path):
    embedder = tiny_embedders["tiny-qwen2-vl"]
    records = bench_records(8, tmp_path / "images", seed=5)
    batches = _our_batches(embedder, records, 2)
    one = [t.numpy() for t in _run_model(embedder, batches)]
    several = [t.numpy() for t in _run_model(embedder, batches, workers=2)]
    assert [a.shape for a in one] == [a.shape for a in several] and sum(len(a) for a in one) == 8
    for a, b in zip(one, several, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)
    # the timed batches are the embedder's own vectors (in plan order: compare column by column sorted)
    ours = embedder.encode(records, batch_size=2, role="candidate")
    np.testing.assert_allclose(np.sort(np.concatenate(one), axis=0), np.sort(ours, axis=0), atol=1e-5)
    threads = torch.get_num_threads()
    scaling = core_scaling(embedder, records, 2, workers=2, reps=1)
    assert isinstance(scaling, float) and math.isfinite(scaling) and scaling > 0
    assert torch.get_num_threads() == threads  # the one-thread setting is undone


def test_compare_times_the_packed_path_and_reports_flop_rates(tiny_embedders, tmp_path):
    from umarvel_cli.bench.embed import _compare, _rows
    from umarvel_cli.bench.flops import model_flops

    embedder = tiny_embedders["tiny-qwen2-vl"]
    records = bench_records(10, tmp_path / "images", seed=6)
    r = _compare(embedder, records, 4, reps=1, sync=lambda: None)
    assert r["max_abs_diff"] < 1e-5 and r["packed_max_abs_diff"] < 1e-5
    encoded = embedder.formatter.encode_many(records, "candidate")
    lengths, grids = [e.length for e in encoded], [g for e in encoded for g in e.grids]
    assert grids and r["flops"] == model_flops(embedder.backbone.config, lengths, grids)
    rows = _rows(10, r, "cpu")
    assert [row["method"] for row in rows] == [
        "naive loop",
        "umarvel embed path",
        "umarvel embed path, packed",
    ]
    assert rows[2]["LLM tokens (padded)"] == sum(lengths) <= rows[1]["LLM tokens (padded)"]
    for row in rows:
        assert row["MFU"] is None  # no bf16 peak for a CPU: the FLOP rate only
        assert row["GFLOP/s"] == pytest.approx(r["flops"] / row["seconds"] / 1e9)
