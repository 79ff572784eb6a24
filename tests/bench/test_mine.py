"""`umarvel bench mine --size tiny`: both paths run on the same generated vectors (no timed asserts)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from umarvel_cli.app import app


def test_tiny_mine_bench_reports_both_paths(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "mine", "--size", "tiny", "--json", str(out)])
    assert res.exit_code == 0, res.output
    (result,) = json.loads(out.read_text())
    assert [r["method"] for r in result["rows"]] == [
        "mine (search + filters + write)",
        "search only (baseline)",
    ]
    extra = result["extra"]
    assert (extra["queries"], extra["candidates"], extra["rows"]) == (2_000, 20_000, 2_000)
    assert extra["negatives"] == 5 * 2_000  # every planted query keeps k negatives
    assert extra["positive in top-100"] == 1.0
    assert extra["same-content drops"] > 0 and extra["ratio drops"] > 0  # the filters had work to do
    assert extra["ratio"] == result["rows"][0]["seconds"] / result["rows"][1]["seconds"]
    assert extra["cpu_ratio"] == result["rows"][0]["cpu seconds"] / result["rows"][1]["cpu seconds"]
    assert all(r["peak RSS MiB"] > 0 for r in result["rows"])
    assert "mine/search time" in result["summary"]


def test_size_a_benchmark_does_not_have_is_refused():
    res = CliRunner().invoke(app, ["bench", "search", "--size", "tiny"])
    assert res.exit_code == 2 and "bench search has no size 'tiny'" in res.output
