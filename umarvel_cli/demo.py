"""The whole pipeline on the built-in demo data with a tiny model, on a CPU.

Each step is an ordinary stage writing into its own folder under `out/`, so the demo resumes where it
stopped and a second run says "up to date" for every step. Stages a release does not provide yet are
listed as skipped in the report instead of failing the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umarvel_cli.console import info
from umarvel_cli.errors import NotImplementedStage

DEMO_STAGES = ("nli", "caption", "mbeir")
# Small zero-shot sets in the CIRCO and MSR-VTT release formats (`data/zeroshot/demo.py`): the
# untrained and the final model are scored on them, zero-shot, with each benchmark's own metric.
ZEROSHOT_SETS = {"circo": "CIRCO", "msrvtt": "msrvtt"}  # benchmark -> release folder
# The demo's tiny model pools the user turn only (see `init_tiny_model`): it learns several times faster.
DEMO_POOL_TOKENS = "content"


@dataclass
class DemoResult:
    out: Path
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, status)
    scores: dict[str, float] = field(default_factory=dict)  # model label -> average UniIR Recall
    task_scores: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # model label -> {task label: score}
    chance: dict[str, float | None] = field(default_factory=dict)  # task label -> chance Recall@k
    zeroshot: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # model -> {"bench task metric": score}
    report: Path | None = None


def _step(result: DemoResult, name: str, fn: Callable[[], Any]) -> Any:
    info(f"[bold cyan]demo[/] {name}")
    try:
        value = fn()
    except (NotImplementedStage, ImportError) as e:
        info(f"[yellow]demo {name}: skipped ({e})[/]")
        result.steps.append((name, f"skipped: {e}"))
        return None
    result.steps.append((name, "done"))
    return value


def run_demo(
    out: Path,
    size: str = "small",
    seed: int = 0,
    backbone: str = "tiny-qwen2-vl",
    split: str = "test",
    force: bool = False,
    train_overrides: list[str] | None = None,
    ablations: bool = False,
) -> DemoResult:
    """prepare → init model → eval (zero-shot) → train progressive (nli, caption, mbeir) → eval each stage
    (→ `ablations`: the paper's switches, `umarvel_cli/ablations.py`)."""
    from umarvel_cli.data.demo import prepare_demo
    from umarvel_cli.data.demo.corpora import CAPTIONS_FILE, NLI_FILE, PAIRS_DIR
    from umarvel_cli.data.mbeir.reader import prepare_mbeir
    from umarvel_cli.data.pairs import prepare_pairs
    from umarvel_cli.training.config import size_sets

    user_overrides = list(train_overrides or [])
    train_overrides = size_sets("demo", size, user_overrides)  # the size's section of the demo profile
    out = Path(out)
    result = DemoResult(out=out)
    raw, tables = out / "mbeir", out / "tables"

    _step(result, "prepare demo", lambda: prepare_demo(raw, seed=seed, size=size, force=force))
    _step(result, "prepare mbeir", lambda: prepare_mbeir(raw, tables, force=force))
    _step(
        result,
        "prepare pairs (nli)",
        lambda: prepare_pairs(raw / PAIRS_DIR / NLI_FILE, out / "pairs_nli", kind="nli", force=force),
    )
    _step(
        result,
        "prepare pairs (caption)",
        lambda: prepare_pairs(
            raw / PAIRS_DIR / CAPTIONS_FILE,
            out / "pairs_caption",
            kind="caption",
            images_root=raw / PAIRS_DIR,
            force=force,
        ),
    )

    def init() -> Path:
        from umarvel_cli.models.tiny import init_tiny_model

        target = out / "models" / "init"
        if (target / "umarvel.json").is_file() and not force:
            return target
        return init_tiny_model(backbone, target, seed=seed, pool_tokens=DEMO_POOL_TOKENS)

    init_dir = _step(result, f"init-model {backbone}", init)

    def evaluate(label: str, model: Path) -> None:
        from umarvel_cli.evaluation import evaluate_mbeir

        metrics = evaluate_mbeir(
            tables, split=split, pool="local", out=out / "eval" / label, model=model, force=force
        )
        result.scores[label] = float(metrics["headline"]["mean"])
        result.task_scores[label] = {t["label"]: float(t["score"]) for t in metrics["tasks"]}
        chance = metrics.get("chance") or {}
        result.chance.update({t["label"]: chance.get(t["task"]) for t in metrics["tasks"]})

    if init_dir is not None:
        _step(result, "eval init (zero-shot)", lambda: evaluate("init", init_dir))

    def train() -> dict[str, Path]:
        from umarvel_cli.training.progressive import train_progressive

        return train_progressive(
            data=tables,
            nli_pairs=out / "pairs_nli",
            caption_pairs=out / "pairs_caption",
            model=init_dir,
            out=out / "train",
            profile="demo",
            overrides=train_overrides or [],
            force=force,
        )

    stage_dirs = _step(result, "train --stage progressive", train) if init_dir is not None else None
    for stage in DEMO_STAGES:
        if stage_dirs and stage in stage_dirs:
            _step(result, f"eval {stage}", lambda s=stage: evaluate(s, stage_dirs[s]))

    zs_root = _step(
        result, "prepare zeroshot (CIRCO and MSR-VTT formats)", lambda: _zeroshot_sets(out, seed, force)
    )
    if zs_root is not None:
        final = DEMO_STAGES[-1]
        for label, model in (("init", init_dir), (final, stage_dirs.get(final) if stage_dirs else None)):
            if model is not None:
                _step(
                    result,
                    f"eval zeroshot {label}",
                    lambda lb=label, m=model: _eval_zeroshot(result, zs_root, lb, m, force),
                )

    for later in ("mine", "train --stage hardneg", "rerank", "distill"):
        result.steps.append((later, "built; not run by the demo yet (issue 18)"))

    if ablations:
        from umarvel_cli.ablations import run_ablations

        _step(
            result,
            "ablations (out/ablations/report.md)",
            lambda: run_ablations(
                out, size, backbone=backbone, split=split, force=force, train_overrides=user_overrides
            ),
        )
    result.report = write_demo_report(result)
    return result


def _zeroshot_sets(out: Path, seed: int, force: bool) -> Path:
    """The demo's zero-shot releases under out/zeroshot/ and their tables (each an ordinary stage)."""
    from umarvel_cli.data.zeroshot import prepare_zeroshot
    from umarvel_cli.data.zeroshot.demo import DEMO_MARKER, write_zeroshot_demo

    root = out / "zeroshot"
    if force or not all((root / folder / DEMO_MARKER).is_file() for folder in ZEROSHOT_SETS.values()):
        write_zeroshot_demo(root, seed=seed)
    for name, folder in ZEROSHOT_SETS.items():
        prepare_zeroshot(name, root / folder, root / f"{name}_tables", force=force)
    return root


def _eval_zeroshot(result: DemoResult, root: Path, label: str, model: Path, force: bool) -> None:
    from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot

    for name in ZEROSHOT_SETS:
        record = evaluate_zeroshot(
            name,
            root / f"{name}_tables",
            result.out / "eval_zeroshot" / label / name,
            model=model,
            force=force,
        )
        for t in record["tasks"]:
            result.zeroshot.setdefault(label, {})[f"{name} {t['task']} {t['headline']}"] = float(t["score"])


def write_demo_charts(result: DemoResult) -> None:
    """progression.png (each stage's mean with its spread over tasks) and per_task.png (every stage
    side by side per task, with the chance level)."""
    from umarvel_cli.metrics.chart import progression, task_bars

    tasks = list(dict.fromkeys(t for scores in result.task_scores.values() for t in scores))
    known = [c for c in (result.chance.get(t) for t in tasks) if c is not None]
    progression(
        result.out / "progression.png",
        "Demo: UniIR Recall@k after each stage (local pools)",
        [(label, list(result.task_scores.get(label, {}).values())) for label in result.scores],
        chance=sum(known) / len(known) if known else None,
    )
    task_bars(
        result.out / "per_task.png",
        "Demo: UniIR Recall@k per task after each stage (local pools)",
        tasks,
        {label: [scores.get(t) for t in tasks] for label, scores in result.task_scores.items()},
        chance=[result.chance.get(t) for t in tasks],
    )


def write_demo_report(result: DemoResult) -> Path:
    lines = ["# umarvel demo", "", "| step | status |", "|---|---|"]
    lines += [f"| {name} | {status} |" for name, status in result.steps]
    if result.scores:
        lines += [
            "",
            "Average UniIR Recall@k over the demo's tasks (local pools):",
            "",
            "| model | average |",
            "|---|---|",
        ]
        lines += [f"| {label} | {score:.4f} |" for label, score in result.scores.items()]
    result.out.mkdir(parents=True, exist_ok=True)
    if result.scores:
        write_demo_charts(result)
        lines += ["", "![average recall after each stage, with its spread over tasks](progression.png)"]
        lines += ["", "![every stage per task](per_task.png)"]
        lines += ["", "Per-task tables, CSVs and charts of each model: `eval/<model>/report.md`."]
    if result.zeroshot:
        columns = list(dict.fromkeys(c for scores in result.zeroshot.values() for c in scores))
        lines += [
            "",
            "Zero-shot, on small sets in the CIRCO and MSR-VTT release formats (each benchmark's metric):",
            "",
        ]
        lines += ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [
            f"| {label} | " + " | ".join(f"{scores[c]:.4f}" if c in scores else "–" for c in columns) + " |"
            for label, scores in result.zeroshot.items()
        ]
        lines += ["", "Reports: `eval_zeroshot/<model>/<benchmark>/report.md`."]
    path = result.out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (result.out / "demo_scores.json").write_text(json.dumps(result.scores, indent=2) + "\n")
    return path
