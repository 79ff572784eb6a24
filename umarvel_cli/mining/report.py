"""The mining report (`report.md`, `report.json`, PNG charts), built from the finished `mined` table.

It answers what a person must check before training on mined negatives: where the labelled positive
ranks (a positive far down means the top is full of unlabelled positives), how many candidates each
filter removed, whether kept negatives score like positives, which queries are short of k negatives,
and, on the demo, the share of kept negatives that are planted near-duplicates of a positive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from umarvel_cli.artifacts import read_table
from umarvel_cli.mining.filters import FILTERS
from umarvel_cli.mining.near_duplicates import count_marked

if TYPE_CHECKING:
    from umarvel_cli.mining.settings import MineSettings

REPORT_MD, REPORT_JSON = "report.md", "report.json"
RANK_PNG, DROPS_PNG, SCORES_PNG = "first_pos_rank.png", "filter_drops.png", "scores.png"
SHORT_POLICY = (
    "kept as they are (not padded): their rows hold the negatives that passed the filters; "
    "the hard-negative training set fills the missing slots by repeating the row's own negatives, and "
    "gives a row with none k negatives drawn from those mined for other queries of its task"
)


def rank_bins(topk: int) -> list[tuple[str, int, int]]:
    edges = [1, 2, 6, 11, 21, 51, 101, 201, 501, 1001]
    bins, lo = [], 1
    for hi in edges[1:]:
        if lo > topk:
            break
        top = min(hi - 1, topk)
        bins.append((str(lo) if lo == top else f"{lo}-{top}", lo, top))
        lo = hi
    return bins


def summarize(
    out: Path, settings: MineSettings, marks: dict | None
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The report's numbers, plus the kept-negative and positive scores for the chart."""
    t = read_table(out, "mined").to_pydict()
    k = settings.filters.num_negatives
    n = len(t["qid"])
    kept = np.array([len(x) for x in t["neg_ids"]], dtype=np.int64)
    ranked = np.array([s == "topk" for s in t["source"]], dtype=bool)
    first = np.array([r if r is not None else 0 for r in t["first_pos_rank"]], dtype=np.int64)
    hist = {
        label: int(((first >= lo) & (first <= hi) & ranked).sum())
        for label, lo, hi in rank_bins(settings.topk)
    }
    hist["not in top-k"] = int(((first == 0) & ranked).sum())
    drops = {name: int(np.sum(t[f"drop_{name}"])) for name in FILTERS}
    per_task: dict[str, dict[str, Any]] = {}
    tasks = np.array(t["task"], dtype=object)
    for task in dict.fromkeys(t["task"]):
        m = tasks == task
        fr = first[m & ranked]
        per_task[task] = {
            "queries": int(m.sum()),
            "source": "random" if not ranked[m].any() else "topk",
            "positive_in_topk": float((fr > 0).mean()) if len(fr) else None,
            "median_first_pos_rank": float(np.median(fr[fr > 0])) if (fr > 0).any() else None,
            "mean_negatives": float(kept[m].mean()),
            "short": int((kept[m] < k).sum()),
            "drops": {name: int(np.sum(np.array(t[f"drop_{name}"])[m])) for name in FILTERS},
        }
    neg_scores = np.array([s for row in t["neg_scores"] for s in row], dtype=np.float32)
    pos_scores = np.array([s for s in t["pos_score"] if s is not None], dtype=np.float32)
    short = kept < k
    summary: dict[str, Any] = {
        "queries": n,
        "num_negatives": k,
        "negatives": int(kept.sum()),
        "short": int(short.sum()),
        "without_negatives": int((kept == 0).sum()),
        "share_with_k": float((~short).mean()) if n else 0.0,
        "short_policy": SHORT_POLICY,
        "short_examples": [t["qid"][i] for i in np.flatnonzero(short)[:20]],
        "first_pos_rank": hist,
        "drops": drops,
        "scores": {
            "negatives": _stats(neg_scores),
            "positives": _stats(pos_scores),
        },
        "per_task": per_task,
    }
    if marks is not None:
        filt = count_marked(t["pos_ids"], t["neg_ids"], marks)
        plain = count_marked(t["pos_ids"], t["top_neg_ids"], marks)
        summary["near_duplicates"] = {
            "filtered": {"negatives": filt.negatives, "marked": filt.marked, "share": filt.share},
            "unfiltered": {"negatives": plain.negatives, "marked": plain.marked, "share": plain.share},
            "removed": 1.0 - filt.marked / plain.marked if plain.marked else None,
        }
    return summary, neg_scores, pos_scores


def _stats(x: np.ndarray) -> dict[str, float | None]:
    if not len(x):
        return {"count": 0, "mean": None, "p10": None, "p50": None, "p90": None}
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    return {"count": len(x), "mean": float(x.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90)}


def _charts(out: Path, summary: dict[str, Any], neg: np.ndarray, pos: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    hist = summary["first_pos_rank"]
    ax.bar(list(hist), list(hist.values()), color="#4477aa")
    ax.set(title="Rank of the first labelled positive", xlabel="rank", ylabel="queries")
    ax.tick_params(axis="x", labelrotation=30)
    save(fig, RANK_PNG)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    drops = summary["drops"]
    ax.barh(list(drops)[::-1], list(drops.values())[::-1], color="#cc6677")
    ax.set(title="Candidates removed by each filter (in order)", xlabel="candidates")
    save(fig, DROPS_PNG)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    finite = [x[np.isfinite(x)] for x in (neg, pos)]
    if any(len(x) for x in finite):
        lo = min(float(x.min()) for x in finite if len(x))
        hi = max(float(x.max()) for x in finite if len(x))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 40)
        for x, label, colour in (
            (finite[0], "kept negatives", "#cc6677"),
            (finite[1], "best positive", "#4477aa"),
        ):
            if len(x):
                ax.hist(x, bins=bins, alpha=0.6, density=True, label=label, color=colour)
        ax.legend()
    ax.set(title="Cosine scores: kept negatives vs best labelled positive", xlabel="cosine", ylabel="density")
    save(fig, SCORES_PNG)


def _markdown(summary: dict[str, Any], settings: MineSettings) -> str:
    f = settings.filters
    lines = [
        "# Hard-negative mining report",
        "",
        f"Split `{settings.split}`, pool `{settings.pool}`, top-{settings.topk}, {f.num_negatives} negatives per "
        f"query ({f.sample}), window {f.rank_range[0]}-{f.rank_range[1]}, margin {f.margin}, "
        f"max-score-ratio {f.max_score_ratio}, max-score {f.max_score}, same-modality {f.same_modality}, "
        f"random tasks: {', '.join(settings.random_tasks) or 'none'}, seed {settings.seed}.",
        "",
        f"- queries: {summary['queries']:,}; negatives kept: {summary['negatives']:,}",
        f"- queries with {f.num_negatives} negatives: {100 * summary['share_with_k']:.1f}%; short: {summary['short']:,} "
        f"(none at all: {summary['without_negatives']:,})",
        f"- short queries are {summary['short_policy']}",
    ]
    nd = summary.get("near_duplicates")
    if nd:
        removed = "n/a" if nd["removed"] is None else f"{100 * nd['removed']:.1f}%"
        lines += [
            "",
            "## Planted near-duplicates among the negatives (demo marks)",
            "",
            "| negatives | count | marked false negatives | share |",
            "|---|---:|---:|---:|",
            f"| unfiltered (first {f.num_negatives} non-positives) | {nd['unfiltered']['negatives']:,} | "
            f"{nd['unfiltered']['marked']:,} | {100 * nd['unfiltered']['share']:.2f}% |",
            f"| filtered (kept) | {nd['filtered']['negatives']:,} | {nd['filtered']['marked']:,} | "
            f"{100 * nd['filtered']['share']:.2f}% |",
            "",
            f"The filters removed {removed} of the marked false negatives.",
        ]
    lines += ["", "## Rank of the first labelled positive", "", f"![first positive rank]({RANK_PNG})", ""]
    lines += ["| rank | queries |", "|---|---:|"] + [
        f"| {b} | {c:,} |" for b, c in summary["first_pos_rank"].items()
    ]
    lines += [
        "",
        "## Candidates removed by each filter (applied in this order)",
        "",
        f"![filter drops]({DROPS_PNG})",
        "",
    ]
    lines += ["| filter | removed |", "|---|---:|"] + [
        f"| {n} | {c:,} |" for n, c in summary["drops"].items()
    ]
    s = summary["scores"]
    lines += [
        "",
        "## Scores",
        "",
        f"![scores]({SCORES_PNG})",
        "",
        "| | count | mean | p10 | p50 | p90 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("negatives", "positives"):
        st = s[name]
        vals = " | ".join("-" if st[c] is None else f"{st[c]:.3f}" for c in ("mean", "p10", "p50", "p90"))
        lines.append(f"| {name} | {st['count']:,} | {vals} |")
    lines += ["", "## Per task", "", "| task | source | queries | positive in top-k | median first rank | mean negatives | short |",
              "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for task, r in summary["per_task"].items():
        pin = "-" if r["positive_in_topk"] is None else f"{100 * r['positive_in_topk']:.1f}%"
        med = "-" if r["median_first_pos_rank"] is None else f"{r['median_first_pos_rank']:.0f}"
        lines.append(
            f"| {task} | {r['source']} | {r['queries']:,} | {pin} | {med} | {r['mean_negatives']:.2f} | {r['short']:,} |"
        )
    if summary["short_examples"]:
        lines += ["", "Short queries (first 20): " + ", ".join(f"`{q}`" for q in summary["short_examples"])]
    return "\n".join(lines) + "\n"


def write_report(out: Path, settings: MineSettings, marks: dict | None = None) -> dict[str, Any]:
    """Write report.md, report.json and the three charts into `out`; returns the summary."""
    summary, neg, pos = summarize(out, settings, marks)
    _charts(out, summary, neg, pos)
    (out / REPORT_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    (out / REPORT_MD).write_text(_markdown(summary, settings))
    return summary
