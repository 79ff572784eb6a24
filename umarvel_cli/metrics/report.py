"""Render evaluation summaries as text: a paper-shaped Markdown table and a per-task CSV (no I/O)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from umarvel_cli.metrics.aggregate import Summary

DETAIL_METRICS = ("hit@1", "hit@5", "hit@10", "hit@50", "hit@100", "mrr@10", "ndcg@10")


@dataclass(frozen=True)
class ComparisonRow:
    """A published method: per-task values in % and the paper's own average."""

    method: str
    values: Mapping[str, float]
    avg: float


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def render_markdown(
    title: str,
    notes: Sequence[str],
    summary: Summary,
    labels: Mapping[str, str],
    columns: Sequence[str],
    published: Sequence[ComparisonRow] = (),
    ours: str = "umarvel (this run)",
) -> str:
    """`columns` fixes the headline table's task order (all 16 for M-BEIR, even when some are absent)."""
    by = summary.by_task
    cols = list(columns) + [t.task for t in summary.tasks if t.task not in set(columns)]
    head = "| Method | " + " | ".join(labels.get(c, c) for c in cols) + " | Avg |"
    rule = "|---|" + "---|" * (len(cols) + 1)
    lines = [f"# {title}", ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", "## Headline: Recall@k (UniIR hit rate), %", "", head, rule]
    for row in published:
        cells = [f"{row.values[c]:.1f}" if c in row.values else "–" for c in cols]
        lines.append(f"| {row.method} | " + " | ".join(cells) + f" | {row.avg:.1f} |")
    ours_cells = [_pct(by[c].score) if c in by else "–" for c in cols]
    lines.append(f"| **{ours}** | " + " | ".join(ours_cells) + f" | **{_pct(summary.mean)}** |")
    if summary.missing:
        lines += [
            "",
            f"Avg of this run is over the {len(summary.tasks)} tasks present; missing: "
            + ", ".join(summary.missing)
            + ".",
        ]
    lines += [
        "",
        "## Per task, all metrics (%)",
        "",
        "| Task | k | queries | without qrels | without results | Recall@k (UniIR) | recall@k (true) | "
        + " | ".join(DETAIL_METRICS)
        + " |",
        "|---|" + "---|" * (6 + len(DETAIL_METRICS)),
    ]
    for t in summary.tasks:
        details = " | ".join(_pct(t.metrics.get(m)) for m in DETAIL_METRICS)
        lines.append(
            f"| {labels.get(t.task, t.task)} (`{t.task}`) | {t.k} | {t.n_queries} | {t.n_without_qrels} | "
            f"{t.n_without_results} | {_pct(t.score)} | {_pct(t.metrics.get(f'recall@{t.k}'))} | {details} |"
        )
    return "\n".join(lines) + "\n"


def render_csv(summary: Summary, labels: Mapping[str, str]) -> str:
    """One row per task: counts, the headline score and every metric (fractions, 6 decimals)."""
    names = sorted({m for t in summary.tasks for m in t.metrics})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "label", "k", "n_queries", "n_without_qrels", "n_without_results", "score", *names])
    for t in summary.tasks:
        w.writerow(
            [t.task, labels.get(t.task, t.task), t.k, t.n_queries, t.n_without_qrels, t.n_without_results]
            + [f"{t.score:.6f}"]
            + [f"{t.metrics[m]:.6f}" if m in t.metrics else "" for m in names]
        )
    if summary.mean is not None:
        w.writerow(
            [
                "mean",
                f"unweighted mean over {len(summary.tasks)} tasks",
                "",
                "",
                "",
                "",
                f"{summary.mean:.6f}",
            ]
        )
    return buf.getvalue()
