"""Write an evaluation's files: metrics.json, report.md, per-task CSV, the TREC run and a PNG chart.

Each file is written under a temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.atomic import atomic_write_text
from umarvel_cli.metrics.aggregate import Summary
from umarvel_cli.metrics.chart import task_bars
from umarvel_cli.metrics.report import ComparisonRow, render_csv, render_markdown

METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
TASKS_CSV = "per_task.csv"
RUN_TREC = "run.trec"
CHART_PNG = "scores.png"


def summary_to_json(summary: Summary, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "mean": summary.mean,
        "n_tasks": len(summary.tasks),
        "missing_tasks": summary.missing,
        "tasks": [
            {
                "task": t.task,
                "label": labels.get(t.task, t.task),
                "k": t.k,
                "headline": f"hit@{t.k}",
                "score": t.score,
                "n_queries": t.n_queries,
                "n_without_qrels": t.n_without_qrels,
                "n_without_results": t.n_without_results,
                "metrics": t.metrics,
            }
            for t in summary.tasks
        ],
    }


def write_report_files(
    out: Path,
    record: dict[str, Any],
    summary: Summary,
    labels: Mapping[str, str],
    columns: Sequence[str],
    title: str,
    notes: Sequence[str],
    published: Sequence[ComparisonRow],
    reference: ComparisonRow | None = None,
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / METRICS_JSON, json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")
    atomic_write_text(
        out / REPORT_MD, render_markdown(title, notes, summary, labels, columns, published=published)
    )
    atomic_write_text(out / TASKS_CSV, render_csv(summary, labels))
    series: dict[str, list[float | None]] = {
        f"this run (mean {100 * (summary.mean or 0):.1f})": [t.score for t in summary.tasks]
    }
    if reference:
        series[f"published: {reference.method}"] = [
            None if reference.values.get(t.task) is None else reference.values[t.task] / 100
            for t in summary.tasks
        ]
    chance = record.get("chance") or {}
    task_bars(
        out / CHART_PNG,
        title,
        [labels.get(t.task, t.task) for t in summary.tasks],
        series,
        chance=[chance.get(t.task) for t in summary.tasks] if chance else None,
    )
    return {
        "metrics": METRICS_JSON,
        "report": REPORT_MD,
        "per_task_csv": TASKS_CSV,
        "chart": CHART_PNG,
        "trec_run": RUN_TREC,
    }
