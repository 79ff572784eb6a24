from __future__ import annotations

import numpy as np
import pytest

from umarvel_cli.metrics.aggregate import evaluate_queries, summarize_tasks
from umarvel_cli.metrics.chart import chance_recall, progression, task_bars
from umarvel_cli.metrics.report import ComparisonRow, render_csv, render_markdown


def _summary():
    outcomes = evaluate_queries(
        ["a", "b", "c"], {"a": ["x"], "b": ["y"], "c": ["z"]}, {"a": {"x": 1}, "b": {"x": 1}, "c": {"z": 1}}
    )
    return summarize_tasks(
        outcomes, {"a": "t1", "b": "t1", "c": "t2"}, {"t1": 5, "t2": 10}, order=["t1", "t2", "t3"]
    )


def test_markdown_table_keeps_column_order_and_marks_missing():
    md = render_markdown(
        "title",
        ["a note"],
        _summary(),
        {"t1": "Task one", "t2": "Task two"},
        columns=["t1", "t2", "t3"],
        published=[ComparisonRow("Paper", {"t1": 10.0, "t2": 20.0, "t3": 30.0}, 20.0)],
    )
    assert "| Method | Task one | Task two | t3 | Avg |" in md
    assert "| Paper | 10.0 | 20.0 | 30.0 | 20.0 |" in md
    assert "| **umarvel (this run)** | 50.0 | 100.0 | – | **75.0** |" in md
    assert "missing: t3." in md and "- a note" in md


def test_csv_and_chart():
    text = render_csv(_summary(), {"t1": "Task one"})
    lines = text.splitlines()
    assert lines[0].startswith("task,label,k,n_queries,n_without_qrels,n_without_results,score,hit@1")
    assert lines[1].startswith("t1,Task one,5,2,0,0,0.500000")
    assert lines[-1].startswith("mean,unweighted mean over 2 tasks")


def test_chance_recall_is_the_random_ranking_hit_rate():
    assert chance_recall(10, 1, 5) == pytest.approx(0.5)
    assert chance_recall(10, 2, 5) == pytest.approx(1 - 56 / 252)  # 1 - C(8,5)/C(10,5)
    assert chance_recall(4, 1, 10) == 1.0 and chance_recall(10, 0, 5) == 0.0
    assert chance_recall(5_600_000, 1, 5) == pytest.approx(5 / 5_600_000, rel=1e-6)


def test_charts_are_pngs_whose_bars_follow_the_scores(tmp_path):
    from PIL import Image

    tasks = ["MSCOCO t→i", "CIRR (i,t)→i", "FashionIQ (i,t)→i (R@10)"]
    path = task_bars(
        tmp_path / "bars.png",
        "per task",
        tasks,
        {"init": [0.1, 0.2, None], "mbeir": [0.5, 1.0, 0.25]},
        chance=[0.05, 0.1, None],
    )
    short = task_bars(tmp_path / "one.png", "one model", tasks[:1], {"m": [0.5]})
    img = Image.open(path)
    assert img.format == "PNG" and img.size[0] > 800 and img.size[1] > Image.open(short).size[1]
    # the 'mbeir' bars (second colour) are as long as their scores
    px = np.asarray(img.convert("RGB")).astype(int)
    orange = np.all(np.abs(px - np.array([0xE0, 0x7B, 0x39])) < 8, axis=2)
    widths = sorted({int(n) for n in orange.sum(axis=1) if n > 20})
    full = widths[-1]  # CIRR at 100%; MSCOCO at 50% and FashionIQ at 25% of it (anti-aliased edges: +-6 px)
    assert any(abs(w - full / 2) <= 6 for w in widths) and any(abs(w - full / 4) <= 6 for w in widths)
    prog = progression(
        tmp_path / "prog.png", "progression", [("init", [0.1, 0.2]), ("mbeir", [0.5, 1.0])], chance=0.05
    )
    assert Image.open(prog).format == "PNG"
