"""What `umarvel demo` measured, and its report: the paper's ablation table in miniature.

`DemoResult` is the record the demo fills step by step; `write_demo_report` renders it as
`report.md` (steps with their times, one table per pool shaped like the paper's ablation, the chance
level, the zero-shot sets), `report.json` (the same numbers) and the charts. Nothing here runs a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Rows of the ablation table, in the paper's order: model label (the eval folder's name) -> row name.
ROWS = {
    "init": "base (untrained)",
    "nli": "+nli",
    "caption": "+caption",
    "mbeir": "+mbeir (= progressive)",
    "hardneg": "+hardneg",
    "distill": "+distill",
    "umarvel_plus": "U-MARVEL+ (reranked)",
}
POOLS = ("local", "global")
CHANCE_ROW = "chance (random ranking)"


@dataclass
class StepTime:
    """One step's cost: wall and CPU seconds of this process (every thread), and the box's 1-minute
    load average when it ended (the box is shared: wall time depends on it, CPU time much less)."""

    wall_s: float
    cpu_s: float
    load: float


@dataclass
class DemoResult:
    out: Path
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, status)
    times: dict[str, StepTime] = field(default_factory=dict)  # step -> its cost
    scores: dict[str, float] = field(default_factory=dict)  # model label -> average UniIR Recall, local
    task_scores: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # model label -> {task label: score}, local pools
    chance: dict[str, float | None] = field(default_factory=dict)  # task label -> chance Recall@k, local
    global_scores: dict[str, float] = field(default_factory=dict)  # the same on the global pool
    global_task_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    global_chance: dict[str, float | None] = field(default_factory=dict)
    zeroshot: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # model -> {"bench task metric": score}
    split: str = "test"
    notes: list[str] = field(default_factory=list)  # what the report should say about the choices
    report: Path | None = None

    def pool(
        self, pool: str
    ) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, float | None]]:
        """(averages, task scores, chance) of one pool."""
        if pool == "local":
            return self.scores, self.task_scores, self.chance
        return self.global_scores, self.global_task_scores, self.global_chance


def row_name(label: str) -> str:
    return ROWS.get(label, label)


def _tasks(task_scores: dict[str, dict[str, float]]) -> list[str]:
    return list(dict.fromkeys(t for scores in task_scores.values() for t in scores))


def _mean_chance(chance: dict[str, float | None], tasks: list[str]) -> float | None:
    known = [c for c in (chance.get(t) for t in tasks) if c is not None]
    return sum(known) / len(known) if known else None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def ablation_table(result: DemoResult, pool: str) -> list[str]:
    """Markdown rows: one per model in the paper's order, then the chance level; columns every task
    and the average."""
    averages, task_scores, chance = result.pool(pool)
    tasks = _tasks(task_scores)
    lines = ["| model | " + " | ".join(tasks) + " | average |", "|---" * (len(tasks) + 2) + "|"]
    for label in [lb for lb in ROWS if lb in averages] + [lb for lb in averages if lb not in ROWS]:
        cells = [_fmt(task_scores.get(label, {}).get(t)) for t in tasks]
        lines.append(f"| {row_name(label)} | " + " | ".join(cells) + f" | {averages[label]:.4f} |")
    if any(chance.get(t) is not None for t in tasks):
        cells = [_fmt(chance.get(t)) for t in tasks]
        lines.append(f"| {CHANCE_ROW} | " + " | ".join(cells) + f" | {_fmt(_mean_chance(chance, tasks))} |")
    return lines


def report_json(result: DemoResult) -> dict:
    """report.json: the report's numbers, machine-readable."""
    pools = {}
    for pool in POOLS:
        averages, task_scores, chance = result.pool(pool)
        if not averages:
            continue
        tasks = _tasks(task_scores)
        pools[pool] = {
            "rows": [
                {
                    "label": label,
                    "row": row_name(label),
                    "average": averages[label],
                    "tasks": task_scores.get(label, {}),
                }
                for label in averages
            ],
            "chance": {"tasks": {t: chance.get(t) for t in tasks}, "average": _mean_chance(chance, tasks)},
        }
    return {
        "split": result.split,
        "metric": "UniIR Recall@k (k = 10 for Fashion200K and FashionIQ, else 5), averaged over tasks",
        "pools": pools,
        "zeroshot": result.zeroshot,
        "steps": [
            {"step": name, "status": status, **(vars(result.times[name]) if name in result.times else {})}
            for name, status in result.steps
        ],
        "notes": result.notes,
    }


def write_demo_charts(result: DemoResult) -> list[str]:
    """Per pool: progression (each model's mean with its spread over tasks) and per-task bars (every
    model side by side per task, with the chance level). Returns the markdown lines showing them."""
    from umarvel_cli.metrics.chart import progression, task_bars

    lines = []
    for pool in POOLS:
        averages, task_scores, chance = result.pool(pool)
        if not averages:
            continue
        tasks = _tasks(task_scores)
        suffix = "" if pool == "local" else "_global"
        what = f"{pool} pool{'s' if pool == 'local' else ''}, {result.split} split"
        progression(
            result.out / f"progression{suffix}.png",
            f"Demo: UniIR Recall@k after each stage ({what})",
            [(row_name(label), list(task_scores.get(label, {}).values())) for label in averages],
            chance=_mean_chance(chance, tasks),
        )
        task_bars(
            result.out / f"per_task{suffix}.png",
            f"Demo: UniIR Recall@k per task after each stage ({what})",
            tasks,
            {row_name(label): [scores.get(t) for t in tasks] for label, scores in task_scores.items()},
            chance=[chance.get(t) for t in tasks],
        )
        lines += [
            "",
            f"![average recall after each stage, with its spread over tasks ({pool})](progression{suffix}.png)",
        ]
        lines += ["", f"![every stage per task ({pool})](per_task{suffix}.png)"]
    return lines


def _steps_table(result: DemoResult) -> list[str]:
    lines = ["| step | status | wall s | CPU s | load |", "|---|---|---|---|---|"]
    for name, status in result.steps:
        t = result.times.get(name)
        cost = f"{t.wall_s:.1f} | {t.cpu_s:.1f} | {t.load:.1f}" if t else "– | – | –"
        lines.append(f"| {name} | {status} | {cost} |")
    wall = sum(t.wall_s for t in result.times.values())
    cpu = sum(t.cpu_s for t in result.times.values())
    lines.append(f"| total | | {wall:.1f} | {cpu:.1f} | |")
    return lines


def write_demo_report(result: DemoResult) -> Path:
    """report.md, report.json, demo_scores.json (local averages, as before) and the charts."""
    result.out.mkdir(parents=True, exist_ok=True)
    lines = ["# umarvel demo", ""]
    if result.scores or result.global_scores:
        lines += [
            f"The paper's ablation in miniature: average UniIR Recall@k on the **{result.split}** split "
            "after each stage of the recipe (every choice of the demo profile was made on the val split; "
            "U-MARVEL+'s fusion weight is tuned on val). Each row continues from the one above; "
            "U-MARVEL+ reranks the final (+distill) retriever's top-k.",
        ]
    for pool in POOLS:
        if not result.pool(pool)[0]:
            continue
        where = (
            "local pools (each task's own candidates, UniIR's default)"
            if pool == "local"
            else "the global pool (every task's candidates together)"
        )
        lines += ["", f"## {pool.capitalize()} pool: {where}", ""]
        lines += ablation_table(result, pool)
    if result.scores or result.global_scores:
        lines += write_demo_charts(result)
        lines += [
            "",
            "Per-task tables, CSVs and charts of each model: `eval/<model>/report.md` (local), `eval_global/<model>/report.md`.",
        ]
    if result.zeroshot:
        columns = list(dict.fromkeys(c for scores in result.zeroshot.values() for c in scores))
        lines += [
            "",
            "## Zero-shot",
            "",
            "Small sets in the CIRCO and MSR-VTT release formats (each benchmark's own metric), never trained on:",
            "",
        ]
        lines += ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [
            f"| {row_name(label)} | " + " | ".join(_fmt(scores.get(c)) for c in columns) + " |"
            for label, scores in result.zeroshot.items()
        ]
        lines += ["", "Reports: `eval_zeroshot/<model>/<benchmark>/report.md`."]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    lines += ["", "## Steps", "", "Times of this run (an up-to-date step takes seconds):", ""]
    lines += _steps_table(result)
    path = result.out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (result.out / "report.json").write_text(json.dumps(report_json(result), indent=2) + "\n")
    (result.out / "demo_scores.json").write_text(json.dumps(result.scores, indent=2) + "\n")
    return path
