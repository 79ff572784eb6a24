"""Report charts drawn with matplotlib (Agg, no display): per-task bars with every model side by side
and a chance-level mark, and a progression chart of averages with their spread over tasks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

COLORS = ("#4271c4", "#e07b39", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
FONT = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "legend.fontsize": 10}


def chance_recall(pool_size: int, positives: int, k: int) -> float:
    """Probability that a random ranking of `pool_size` candidates has one of `positives` in its top k."""
    if pool_size <= 0 or positives <= 0:
        return 0.0
    k = min(k, pool_size)
    if positives > pool_size - k:
        return 1.0
    # 1 - C(N-P, k) / C(N, k), as a product so large pools do not overflow
    log_miss = sum(math.log1p(-positives / (pool_size - i)) for i in range(k))
    return 1.0 - math.exp(log_miss)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, path: Path) -> Path:
    from umarvel_cli.artifacts.atomic import atomic_output

    with atomic_output(path) as fh:
        fig.savefig(fh, format="png")
    return Path(path)


def task_bars(
    path: Path,
    title: str,
    tasks: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    chance: Sequence[float | None] | None = None,
    xlabel: str = "UniIR Recall@k (%)",
) -> Path:
    """Horizontal bars, one group per task (top to bottom in `tasks` order), one bar per model in
    `series` (fractions; None = not evaluated), a black tick at each task's chance level."""
    import matplotlib

    with matplotlib.rc_context(FONT):
        n, m = len(tasks), max(len(series), 1)
        fig = _figure(10, 1.2 + n * (0.28 + 0.2 * m))
        ax = fig.add_subplot()
        height = 0.8 / m
        y = np.arange(n)
        for j, (name, values) in enumerate(series.items()):
            vals = np.array([np.nan if v is None else 100 * v for v in values], dtype=float)
            pos = y - 0.4 + height * (j + 0.5)
            bars = ax.barh(
                pos, np.nan_to_num(vals), height=height * 0.92, color=COLORS[j % len(COLORS)], label=name
            )
            for bar, v in zip(bars, vals, strict=True):
                if not np.isnan(v):
                    ax.text(v + 0.8, bar.get_y() + bar.get_height() / 2, f"{v:.1f}", va="center", fontsize=8)
        if chance is not None:
            for i, c in enumerate(chance):
                if c is not None:
                    ax.plot([100 * c, 100 * c], [i - 0.45, i + 0.45], color="black", lw=2, zorder=5)
            ax.plot([], [], color="black", lw=2, label="chance (random ranking)")
        ax.set_yticks(y, list(tasks))
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(axis="x", color="#dddddd")
        ax.set_axisbelow(True)
        ax.legend(loc="lower right", framealpha=0.9)
        return _save(fig, path)


def progression(
    path: Path,
    title: str,
    stages: Sequence[tuple[str, Sequence[float]]],
    chance: float | None = None,
) -> Path:
    """Each stage's mean over tasks (a bar), its spread (a whisker from the lowest to the highest task,
    a box over the middle half) and every task as a dot."""
    import matplotlib
    from matplotlib.patches import Rectangle

    with matplotlib.rc_context(FONT):
        fig = _figure(max(6.0, 1.6 * len(stages) + 2), 5)
        ax = fig.add_subplot()
        x = np.arange(len(stages))
        for i, (_, scores) in enumerate(stages):
            vals = 100 * np.asarray(scores, dtype=float)
            if not len(vals):
                continue
            mean = float(vals.mean())
            ax.bar(
                i, mean, width=0.6, color=COLORS[0], alpha=0.85, label="mean over tasks" if i == 0 else None
            )
            ax.vlines(i, vals.min(), vals.max(), color="black", lw=1.2)
            q1, q3 = np.percentile(vals, [25, 75])
            ax.add_patch(
                Rectangle(
                    (i - 0.08, q1),
                    0.16,
                    q3 - q1,
                    fill=False,
                    lw=1.2,
                    label="middle half of tasks" if i == 0 else None,
                )
            )
            jitter = np.linspace(-0.18, 0.18, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(
                i + jitter, vals, s=12, color="#333333", zorder=4, label="one task" if i == 0 else None
            )
            ax.text(i, 1.5, f"mean {mean:.1f}", ha="center", va="bottom", color="white", fontweight="bold")
        if chance is not None:
            ax.axhline(100 * chance, color="#c44e52", ls="--", lw=1.5, label="chance (random ranking)")
        ax.set_xticks(x, [name for name, _ in stages])
        ax.set_ylim(0, 105)
        ax.set_ylabel("UniIR Recall@k (%)")
        ax.set_title(title)
        ax.grid(axis="y", color="#dddddd")
        ax.set_axisbelow(True)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, frameon=False)
        return _save(fig, path)


def paired_bars(
    path: Path,
    title: str,
    rows: Sequence[str],
    series: Mapping[str, Sequence[tuple[str, float, float]]],
    ylabel: str = "UniIR Recall@k (%)",
) -> Path:
    """One group per row (e.g. an ablation's switch), one bar per series (e.g. default, alternative):
    each bar its (label, mean, standard error) as a fraction, the label under the bar, the error as a
    whisker."""
    import matplotlib

    with matplotlib.rc_context(FONT):
        n, m = len(rows), max(len(series), 1)
        fig = _figure(max(7.0, 1.9 * n + 1.5), 5.5)
        ax = fig.add_subplot()
        width = 0.8 / m
        x = np.arange(n)
        for j, (name, bars) in enumerate(series.items()):
            pos = x - 0.4 + width * (j + 0.5)
            means = np.array([100 * b[1] for b in bars], dtype=float)
            errors = np.array([100 * b[2] for b in bars], dtype=float)
            ax.bar(pos, means, width=width * 0.92, color=COLORS[j % len(COLORS)], label=name)
            ax.errorbar(pos, means, yerr=errors, fmt="none", ecolor="black", capsize=4, lw=1.2)
            for p, mean, err, (label, _, _) in zip(pos, means, errors, bars, strict=True):
                ax.text(p, mean + err + 1.0, f"{mean:.1f}", ha="center", va="bottom", fontsize=8)
                ax.text(p, 1.0, label, ha="center", va="bottom", rotation=90, fontsize=8, color="white")
        ax.set_xticks(x, list(rows))
        ax.set_ylim(0, 105)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", color="#dddddd")
        ax.set_axisbelow(True)
        ax.legend(loc="upper right", framealpha=0.9)
        return _save(fig, path)
