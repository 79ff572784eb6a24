from __future__ import annotations

from umarvel_cli.metrics.aggregate import evaluate_queries, summarize_tasks
from umarvel_cli.metrics.chart import bar_chart
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
    img = bar_chart("t → x", [("A→B", 0.5), ("C", 1.0)], reference={"C": 0.25}, reference_label="paper")
    assert img.size[1] > 100
    # the bar of 'C' is twice as long as that of 'A→B': count blue pixels on their rows
    px = img.load()
    blue = (66, 113, 196)

    def bar_len(y: int) -> int:
        return sum(1 for x in range(img.size[0]) if px[x, y] == blue)

    top = 14 * 2 + 20 + 22
    assert abs(bar_len(top + 13 + 26) - 2 * bar_len(top + 13)) <= 5  # the 3-px reference tick covers some
