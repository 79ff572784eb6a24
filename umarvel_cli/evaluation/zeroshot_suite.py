"""`eval zeroshot --suite paper`: every benchmark of zeroshot.yaml whose release is under ROOT/<name>/,
prepared and evaluated with one model; OUT/summary.md puts each headline beside the paper's.

Video benchmarks (MSR-VTT, MSVD) are embedded like the others.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.manifest import atomic_write_text
from umarvel_cli.console import info
from umarvel_cli.data.zeroshot import load_zeroshot_suite, prepare_zeroshot
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot
from umarvel_cli.evaluation.zeroshot_rerank import ZeroshotRerank

SUITES = ("paper",)


def _fmt(v: float | None, name: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.1f}" if name.endswith("_rank") else f"{100 * v:.1f}"


def run_suite(
    suite: str, root: Path, model: Path, out: Path, topk: int = 100, force: bool = False
) -> dict[str, Any]:
    if suite not in SUITES:
        raise UmarvelError(f"unknown suite {suite!r}", field="--suite", expected=" | ".join(SUITES))
    root, out = Path(root), Path(out)
    table = load_zeroshot_suite()
    found = [name for name in table.benchmarks if (root / name).is_dir()]
    if not found:
        raise UmarvelError(
            "no benchmark release found", file=root, expected="folders named " + ", ".join(table.benchmarks)
        )
    results: dict[str, Any] = {}
    for name in found:
        spec = table.get(name)
        info(f"suite: {spec.display}")
        prepare_zeroshot(name, root / name, out / name / "tables", force=force)
        results[name] = evaluate_zeroshot(
            name, out / name / "tables", out / name / "eval", model=model, topk=topk, force=force
        )
    lines = [f"# Zero-shot suite `{suite}`: model `{model}`", "", f"releases under `{root}`", ""]
    lines += ["| benchmark | task | metric | ours | paper |", "|---|---|---|---|---|"]
    for record in results.values():
        for t in record["tasks"]:
            paper = t["paper"].get(t["headline"])
            lines.append(
                f"| {record['benchmark']} | {t['task']} | {t['headline']} | {_fmt(t['score'], t['headline'])} | "
                f"{'–' if paper is None else f'{paper:.1f}'} |"
            )
        if record["headline"]:
            h = record["headline"]
            paper = "–" if h["paper"] is None else f"{h['paper']:.1f}"
            lines.append(f"| {record['benchmark']} | mean | {h['name']} | {_fmt(h['score'], '')} | {paper} |")
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.md", "\n".join(lines))
    return {"evaluated": list(results), "summary": str(out / "summary.md")}


def eval_zeroshot(
    out: Path,
    benchmark: str | None = None,
    data: Path | None = None,
    run: Path | None = None,
    model: Path | None = None,
    suite: str | None = None,
    root: Path | None = None,
    topk: int = 100,
    force: bool = False,
    rerank: ZeroshotRerank | None = None,
) -> dict[str, Any]:
    """`umarvel eval zeroshot`: one benchmark (`--benchmark --data`, a run or a model) or a whole suite
    (`--suite --root --model`); returns `{"suite": run_suite's result}` or `{"record": metrics.json}`."""
    if suite is not None:
        if rerank is not None and rerank.active:
            raise UmarvelError("--suite does not rerank: give --benchmark and --data", field="--rerank")
        if benchmark or data or run or root is None or model is None:
            raise UmarvelError(
                "--suite takes --root and --model (not --benchmark, --data or --run)", field="--suite"
            )
        return {"suite": run_suite(suite, root, model, out, topk=topk, force=force)}
    if benchmark is None or data is None:
        raise UmarvelError("give --benchmark and --data (or --suite)", field="--benchmark")
    return {
        "record": evaluate_zeroshot(
            benchmark, data, out, run=run, model=model, topk=topk, force=force, rerank=rerank
        )
    }
