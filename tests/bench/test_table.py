"""The JSON records → markdown tables writer: every row's ratio against its group's baseline."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from umarvel_cli import bench
from umarvel_cli.app import app
from umarvel_cli.bench import BenchResult
from umarvel_cli.bench.runner import run_benches
from umarvel_cli.bench.table import TableSpec, markdown, ratios, record

RATE = TableSpec(
    label="method",
    metric="items/s",
    baseline="naive",
    headline="ours",
    group=("device",),
    columns=("peak MiB",),
)
ROWS = [
    {"device": "cpu", "method": "ours", "items/s": 300.0, "peak MiB": 12.5},
    {"device": "cpu", "method": "naive", "items/s": 120.0, "peak MiB": 40.0},
    {"device": "cuda", "method": "naive", "items/s": 1000.0, "peak MiB": 2048.0},
    {"device": "cuda", "method": "ours", "items/s": 4500.0, "peak MiB": 1024.0},
    {"device": "tpu", "method": "ours", "items/s": 7.0, "peak MiB": 1.0},  # no baseline in its group
]


def test_ratios_are_against_the_baseline_of_the_same_group():
    assert ratios(ROWS, RATE) == [pytest.approx(2.5), 1.0, 1.0, pytest.approx(4.5), None]


def test_a_time_metric_with_its_baseline_in_the_same_row_is_inverted_to_a_speed():
    spec = TableSpec(label="impl", metric="ms", baseline="plain", headline="eager", lower_is_better=True,
                     baseline_metric="plain_ms")  # fmt: skip
    rows = [
        {"impl": "eager", "ms": 40.0, "plain_ms": 100.0},
        {"impl": "chunked", "ms": 125.0, "plain_ms": 100.0},
    ]
    assert ratios(rows, spec) == [pytest.approx(2.5), pytest.approx(0.8)]
    text = markdown([record(BenchResult("loss", "s", rows), "quick", spec)])
    assert "| eager | 40.00 | 100 | 2.50× |" in text
    assert "| loss | eager | 40.00 ms | plain | 100 plain_ms | 2.50× |" in text
    skipped = markdown([record(BenchResult("rerank", "skipped: no CUDA device", []), "quick", spec)])
    assert "skipped: no CUDA device" in skipped and "| rerank |" not in skipped and "| impl |" not in skipped


def test_markdown_has_an_overview_and_each_row_with_its_value_and_ratio():
    rec = record(BenchResult("embed", "96 items, ours 2.5x", ROWS), "quick", RATE, seconds=12.3)
    rec["machine"] = {
        "cpus": 2,
        "cpu": "x86_64",
        "threads": 2,
        "torch": "2.13",
        "python": "3.11",
        "load_average": 0.5,
    }
    text = markdown([json.loads(json.dumps(rec))])  # as read back from the JSON file
    assert "| benchmark | ours | figure | baseline | figure | vs baseline |" in text
    assert "| embed (cpu) | ours | 300 items/s | naive | 120 items/s | 2.50× |" in text
    assert "### embed (size quick, 12 s)" in text
    assert "| device | method | items/s | peak MiB | vs baseline |" in text
    assert "| cpu | ours | 300 | 12.50 | 2.50× |" in text
    assert "| cpu | **naive** | 120 | 40.00 | 1.00× |" in text
    assert "| cuda | ours | 4,500 | 1,024 | 4.50× |" in text
    assert "| tpu | ours | 7.00 | 1.00 | — |" in text
    assert "2 CPUs (x86_64), 2 torch threads" in text and "load average 0.5" in text


def test_run_benches_writes_one_json_per_bench_and_the_tables(tmp_path, monkeypatch):
    fake = SimpleNamespace(
        SIZES=("quick",), TABLE=RATE, run=lambda size: BenchResult("fake", f"ran {size}", ROWS[:2], {"k": 1})
    )
    monkeypatch.setattr(bench, "load", lambda name: fake)
    out = tmp_path / "bench_out"
    (rec,) = run_benches(["fake"], "quick", json_out=tmp_path / "all.json", out_dir=out)
    saved = json.loads((out / "fake.json").read_text())
    assert saved["rows"] == ROWS[:2] and saved["extra"] == {"k": 1} and saved["size"] == "quick"
    assert saved["table"]["baseline"] == "naive" and saved["machine"]["cpus"] >= 1 and saved["seconds"] >= 0
    assert json.loads((tmp_path / "all.json").read_text()) == [saved]
    assert "| cpu | ours | 300 | 12.50 | 2.50× |" in (out / "benchmarks.md").read_text()
    (out / "benchmarks.md").unlink()  # `bench tables DIR` rebuilds it from the JSON alone
    res = CliRunner().invoke(app, ["bench", "tables", str(out), "--title", "device check"])
    assert res.exit_code == 0, res.output
    text = (out / "benchmarks.md").read_text()
    assert text.startswith("## device check\n") and "### fake (`umarvel bench fake --size quick`, " in text
    assert "| fake (cpu) | ours | 300 items/s | naive | 120 items/s | 2.50× |" in text
    with pytest.raises(Exception, match="has no size 'default'"):
        run_benches(["fake"], "default")
