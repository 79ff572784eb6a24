"""The train benchmark's FLOPs per sample: every sequence of an example, at its formatted length."""

from __future__ import annotations

import pytest

from umarvel_cli.bench.flops import model_flops
from umarvel_cli.bench.train import _caption_pairs, _pairs, sample_flops
from umarvel_cli.training.data import PairsSet


@pytest.mark.parametrize("kind", ["nli", "caption"])
def test_sample_flops_count_query_positive_and_negative(kind, tiny_embedders, tmp_path):
    model = tiny_embedders["tiny-qwen2-vl"]
    make = _pairs if kind == "nli" else _caption_pairs
    data = PairsSet(make(tmp_path / kind, 6), kind, hard_negatives=1)
    fmt, config = model.formatter, model.backbone.config
    expected = []
    for i in range(len(data)):
        ex = data.example(i, 0)
        items = fmt.encode_many([ex.query], "query") + fmt.encode_many(
            [ex.positive, *ex.negatives], "candidate"
        )
        assert len(items) == (3 if kind == "nli" else 2)  # nli rows carry a contradiction as negative
        expected.append(model_flops(config, [e.length for e in items], [g for e in items for g in e.grids]))
    assert sample_flops(model, data) == pytest.approx(sum(expected) / len(expected), rel=1e-12)
    assert sample_flops(model, data, limit=1) == pytest.approx(expected[0], rel=1e-12)
