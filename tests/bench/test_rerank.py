"""`umarvel bench rerank`: ours, the full-vocabulary forward and the released generate() per pair
give the same P(Yes); the record carries every path and the ratio of the measured times."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from umarvel_cli.bench import rerank
from umarvel_cli.bench.table import markdown, record
from umarvel_cli.models.reranker import Reranker
from umarvel_cli.models.tiny import init_tiny_model


@pytest.fixture(scope="module")
def reranker(tmp_path_factory):
    return Reranker.from_pretrained(
        init_tiny_model("tiny-qwen2-vl", tmp_path_factory.mktemp("rr") / "m", seed=3, kind="reranker"),
        device="cpu",
    )


def test_the_three_paths_give_the_same_p_yes(reranker, tmp_path):
    pairs = rerank.bench_pairs(10, tmp_path / "images", seed=1)
    assert {c.resolved_modality() for _, c in pairs} >= {"text", "image"}  # mixed candidates
    assert len({q.id for q, _ in pairs}) == 2  # 8 candidates per query
    ours = rerank.p_yes_ours(reranker, pairs)
    forward = rerank.p_yes_full_forward(reranker, pairs)
    generated = rerank.p_yes_generate(reranker, pairs)
    assert ours.shape == (10,) and len(set(np.round(ours, 5))) > 1  # the pairs really differ
    np.testing.assert_allclose(forward, ours, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(generated, ours, rtol=1e-4, atol=1e-5)


def test_tiny_run_reports_every_path_and_the_ratio_of_the_measured_times(monkeypatch):
    # in this process instead of one fresh process per path (seconds of imports each)
    monkeypatch.setattr(rerank, "_in_fresh_process", rerank.measure)
    threads = torch.get_num_threads()
    try:
        result = rerank.run("tiny")
    finally:
        torch.set_num_threads(threads)  # the paths run on CPU_THREADS; later tests get this process's
    assert [r["method"] for r in result.rows] == [method for _, method in rerank.PATHS]
    assert all(r["device"].startswith("cpu") for r in result.rows)
    assert set(result.rows[0]) == {
        "device", "method", "pairs", "seconds", "pairs/s", "CPU s", "peak extra MiB", "max P(Yes) diff vs ours"
    }  # fmt: skip
    ours, forward, generate = result.rows
    assert ours["pairs"] == rerank.SIZES["tiny"] and ours["max P(Yes) diff vs ours"] == 0.0
    assert max(forward["max P(Yes) diff vs ours"], generate["max P(Yes) diff vs ours"]) < 1e-4
    t = result.extra["seconds"]
    assert t == {"ours": ours["seconds"], "forward": forward["seconds"], "generate": generate["seconds"]}
    assert result.extra["ratio"] == pytest.approx(generate["seconds"] / ours["seconds"])
    assert result.extra["forward_ratio"] == pytest.approx(forward["seconds"] / ours["seconds"])
    assert all(r["pairs/s"] == pytest.approx(r["pairs"] / r["seconds"]) for r in result.rows)
    assert all(r["peak extra MiB"] >= 0 for r in result.rows)
    assert f"= {result.extra['ratio']:.2f}x" in result.summary
    rec = json.loads(json.dumps(record(result, "tiny", rerank.TABLE)))  # what --out / --json write
    assert {"name", "size", "summary", "rows", "extra", "table"} <= set(rec) and rec["name"] == "rerank"
    assert rec["table"]["baseline"] == generate["method"] and rec["table"]["headline"] == ours["method"]
    assert f"| {result.extra['ratio']:.2f}× |" in markdown([rec])  # ours' row and the overview line
