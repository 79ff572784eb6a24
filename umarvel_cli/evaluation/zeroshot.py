"""`umarvel eval zeroshot`: score any run (or a model's) on a zero-shot benchmark with its protocol.

Ranking benchmarks (CIRCO, MSR-VTT, MSVD, Flickr30K, ShareGPT4V, Urban-1K, VisDial) use the run's
ranking over the task's pool; GeneCIS ranks within each query's own gallery; SugarCrepe and CC-Neg
are a choice between a caption and its negative. Writes metrics.json (definitions, the paper's
number), report.md, per_query.csv, run.trec, scores.png and, for CIRCO's test split (no public
ground truth), the evaluation server's submission file. The run is read and checked before OUT is
touched; the manifest is written last.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from umarvel_cli.artifacts import fingerprint, finish_stage, plan_stage, read_manifest, read_table
from umarvel_cli.artifacts.manifest import atomic_write_text
from umarvel_cli.artifacts.trec import write_trec_run
from umarvel_cli.console import info
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec, TaskSpec, load_zeroshot_suite
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.run_input import read_run, validate_run
from umarvel_cli.evaluation.zeroshot_rerank import ZeroshotRerank
from umarvel_cli.metrics.chart import task_bars
from umarvel_cli.metrics.zeroshot import DEFINITIONS, aggregate, choice_correct, query_metrics, within_gallery
from umarvel_cli.version import __version__

STAGE = "eval-zeroshot"
PREPARE_STAGE = "prepare-zeroshot"
SUBMISSION_DEPTH = 50  # CIRCO's server takes the top 50 image ids of every test query


def _prepared(data: Path, spec: BenchmarkSpec) -> dict[str, Any]:
    manifest = read_manifest(data) if data.is_dir() else None
    if manifest is None or manifest.stage != PREPARE_STAGE:
        raise UmarvelError("not a `umarvel prepare zeroshot` output", file=data, field="--data")
    if manifest.extra.get("benchmark") != spec.name:
        raise UmarvelError(
            f"holds {manifest.extra.get('benchmark')!r} tables, not {spec.name!r}",
            file=data,
            field="--data",
            expected=f"the tables of `umarvel prepare zeroshot --benchmark {spec.name}`",
        )
    return {"split": manifest.extra["split"], "manifest": manifest}


def _ordered_run(table: pa.Table) -> tuple[dict[str, list[str]], dict[str, dict[str, float]]]:
    ordered = table.sort_by(
        [("qid", "ascending"), ("score", "descending"), ("rank", "ascending"), ("did", "ascending")]
    )
    rankings: dict[str, list[str]] = defaultdict(list)
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for q, d, s in zip(*(ordered.column(c).to_pylist() for c in ("qid", "did", "score")), strict=True):
        rankings[q].append(d)
        scores[q].setdefault(d, s)
    return rankings, scores


def _task_queries(data: Path) -> dict[int, list[str]]:
    """Query ids per benchmark task (the tables name a task by its `dataset_id`)."""
    queries = read_table(data, "queries", columns=["qid", "dataset_id"])
    out: dict[int, list[str]] = defaultdict(list)
    for q, t in zip(queries.column("qid").to_pylist(), queries.column("dataset_id").to_pylist(), strict=True):
        out[t].append(q)
    return out


def _grouped(data: Path, table: str, value: str | None, key: str = "qid") -> dict[str, Any]:
    """{key: {did: value}} or, without `value`, {key: [did, ...]} in table order."""
    t = read_table(data, table)
    out: dict[str, Any] = defaultdict(dict if value else list)
    for row in t.to_pylist():
        if value:
            out[row[key]][row["did"]] = row[value]
        else:
            out[row[key]].append(row["did"])
    return out


def _score_task(
    task: TaskSpec,
    qids: list[str],
    rankings: dict[str, list[str]],
    scores: dict[str, dict[str, float]],
    qrels: dict[str, dict[str, int]],
    galleries: dict[str, list[str]],
    spec: BenchmarkSpec,
    pool_size: int,
) -> list[dict[str, float]]:
    rows = []
    for qid in qids:
        relevant = qrels.get(qid, {})
        ranking = rankings.get(qid, [])
        if task.protocol == "choice":
            positive = next(iter(relevant), None)
            value = choice_correct(scores.get(qid, {}), positive, galleries[qid]) if positive else 0.0
            rows.append({"accuracy": value})
            continue
        missing = pool_size  # a positive the run never retrieved ranks last
        if task.protocol == "gallery":
            ranking = within_gallery(ranking, galleries[qid])
            missing = len(galleries[qid])
        rows.append(query_metrics(ranking, relevant, task.metrics, spec.recall_relevance, missing))
    return rows


@dataclass
class _Tables:
    """What scoring a run needs from one prepared tables folder."""

    by_task: dict[int, list[str]]
    qids: pa.Array
    candidates: pa.Array
    galleries: dict[str, list[str]]
    qrels: dict[str, dict[str, int]]
    pool_sizes: dict[str, int]

    @classmethod
    def load(cls, data: Path) -> _Tables:
        by_task = _task_queries(data)
        return cls(
            by_task,
            pa.array([q for qs in by_task.values() for q in qs], type=pa.string()),
            read_table(data, "candidates", columns=["did"]).column("did").combine_chunks(),
            _grouped(data, "galleries", None),
            _grouped(data, "qrels", "relevance"),
            {name: len(dids) for name, dids in _grouped(data, "pools", None, key="pool").items()},
        )


def _score_run(
    spec: BenchmarkSpec, table: pa.Table, tables: _Tables, paper_shown: bool
) -> tuple[list[dict[str, Any]], list[tuple[str, str, dict[str, float]]]]:
    """Each task's record for metrics.json, and (task, qid, metrics) per query."""
    rankings, scores = _ordered_run(table)
    tasks_out: list[dict[str, Any]] = []
    rows: list[tuple[str, str, dict[str, float]]] = []
    for task in spec.tasks:
        qids = tables.by_task.get(task.dataset_id, [])
        if not qids:
            continue
        pool_size = tables.pool_sizes.get(task.name, len(tables.candidates))
        per_query = _score_task(task, qids, rankings, scores, tables.qrels, tables.galleries, spec, pool_size)
        rows += [(task.name, qid, values) for qid, values in zip(qids, per_query, strict=True)]
        values = aggregate(per_query, task.metrics)
        tasks_out.append(
            {
                "task": task.name,
                "direction": task.direction,
                "protocol": task.protocol,
                "n_queries": len(qids),
                "n_without_results": sum(1 for q in qids if q not in rankings),
                "headline": task.headline,
                "score": values[task.headline],
                "metrics": values,
                "paper": spec.paper.get(task.name, {}) if paper_shown else {},
            }
        )
    return tasks_out, rows


def _mean_headline(spec: BenchmarkSpec, table: pa.Table, data: Path) -> float | None:
    """The mean headline over the tasks of `data` (what `--tune-weight-on` maximises)."""
    tables = _Tables.load(data)
    if not tables.qrels:
        return None
    tasks = _score_run(spec, table, tables, False)[0]
    return sum(t["score"] for t in tasks) / len(tasks) if tasks else None


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _value(name: str, v: float) -> str:
    return f"{v:.1f}" if name.endswith("_rank") else _pct(v)


def evaluate_zeroshot(
    benchmark: str,
    data: Path,
    out: Path,
    run: Path | None = None,
    model: Path | None = None,
    topk: int = 100,
    force: bool = False,
    rerank: ZeroshotRerank | None = None,
) -> dict[str, Any]:
    """Score `run`, or the run `model` gives, on the prepared tables of `benchmark` (reranked with
    `rerank` when given: both are reported); returns the metrics.json record."""
    suite = load_zeroshot_suite()
    spec = suite.get(benchmark)
    if (model is None) == (run is None):
        raise UmarvelError("give exactly one of --model or --run", field="--model/--run")
    deepest = max([int(m.split("@")[1]) for t in spec.tasks for m in t.metrics if "@" in m] + [1])
    if topk < max(deepest, SUBMISSION_DEPTH if spec.submission else 1):
        raise UmarvelError(f"--topk {topk} is below the deepest cutoff the benchmark needs", field="--topk")
    data, out = Path(data), Path(out)
    source = Path(model if model is not None else run)
    prepared = _prepared(data, spec)
    split = prepared["split"]
    mode = "model" if model is not None else "run"
    params = {"benchmark": benchmark, "split": split, "mode": mode, "topk": topk if model else None}
    inputs = {"data": fingerprint(data), mode: fingerprint(source)}
    if rerank is not None:
        rerank.check(spec, split, model is not None)
        rerank = rerank if rerank.active else None
    if rerank is not None:
        params |= rerank.params()
        inputs |= rerank.inputs()
    tables = _Tables.load(data)
    by_task, galleries = tables.by_task, tables.galleries
    qid_array, candidates = tables.qids, tables.candidates
    table = tune_table = None
    if run is not None:  # read and checked before OUT is touched: a wrong run leaves nothing behind
        table = read_run(run)
        validate_run(table, qid_array, candidates, split, run)
    if rerank is not None and rerank.tune_run is not None:
        tune_tables = _Tables.load(rerank.tune_data)
        tune_table = read_run(rerank.tune_run)
        validate_run(tune_table, tune_tables.qids, tune_tables.candidates, rerank.tune_on, rerank.tune_run)
    plan = plan_stage(out, STAGE, params, inputs, force)
    if plan.up_to_date:
        info(f"eval zeroshot: {out} is up to date")
        return json.loads((out / "metrics.json").read_text())
    search_info = None
    if model is not None:
        from umarvel_cli.evaluation.zeroshot_model import search_zeroshot_with_model

        search_info = search_zeroshot_with_model(model, data, spec, split, by_task, galleries, out, topk)
        table = read_table(out, "run")
        validate_run(table, qid_array, candidates, split, out)
    assert table is not None
    has_truth = bool(tables.qrels)
    # the paper's numbers only beside a real release's split they were measured on
    synthetic = bool(prepared["manifest"].extra.get("synthetic"))
    paper_shown = split == spec.default_split and not synthetic

    reranked = None
    if rerank is not None:
        from umarvel_cli.evaluation.zeroshot_rerank import rerank_zeroshot

        def tune_run() -> pa.Table:
            if tune_table is not None:
                return tune_table
            from umarvel_cli.evaluation.zeroshot_model import search_zeroshot_with_model

            assert model is not None and rerank.tune_data is not None and rerank.tune_on is not None
            val = _Tables.load(rerank.tune_data)
            search_zeroshot_with_model(
                model,
                rerank.tune_data,
                spec,
                rerank.tune_on,
                val.by_task,
                val.galleries,
                out / "tune-search",
                topk,
            )
            return read_table(out / "tune-search", "run")

        retrieval_tasks = _score_run(spec, table, tables, paper_shown)[0] if has_truth else []
        table, reranked = rerank_zeroshot(table, data, rerank, out, partial(_mean_headline, spec), tune_run)
        reranked["retrieval_tasks"] = retrieval_tasks
    rankings = _ordered_run(table)[0]
    tasks_out, per_query_rows = _score_run(spec, table, tables, paper_shown) if has_truth else ([], [])
    metric_names = sorted({m for t in spec.tasks for m in t.metrics} | {"rank"})
    per_query_csv = io.StringIO()
    writer = csv.writer(per_query_csv)
    writer.writerow(["task", "qid", *metric_names])
    for task_name, qid, values in per_query_rows:
        writer.writerow([task_name, qid, *(values.get(m, "") for m in metric_names)])
    headline: dict[str, Any] | None = None
    if tasks_out and spec.headline_mean:
        name = spec.tasks[0].headline
        headline = {
            "name": f"mean {name} over {len(tasks_out)} subsets",
            "score": sum(t["metrics"][name] for t in tasks_out) / len(tasks_out),
            "paper": spec.paper.get("mean", {}).get(name) if paper_shown else None,
        }

    files = {
        "metrics": "metrics.json",
        "report": "report.md",
        "per_query_csv": "per_query.csv",
        "trec_run": "run.trec",
    }
    if spec.submission == "circo" and split == "test":
        files["submission"] = _write_circo_submission(
            out, rankings, by_task[spec.tasks[0].dataset_id], source
        )
    ordered = table.sort_by(
        [("qid", "ascending"), ("score", "descending"), ("rank", "ascending"), ("did", "ascending")]
    )
    write_trec_run(out / "run.trec", ordered, run_id=f"umarvel_{benchmark}_{split}")
    atomic_write_text(out / "per_query.csv", per_query_csv.getvalue())
    record = {
        "benchmark": spec.display,
        "name": benchmark,
        "split": split,
        "source": spec.source,
        "has_ground_truth": has_truth,
        "synthetic": synthetic,
        "tasks": tasks_out,
        "headline": headline,
        "paper_method": suite.reference_method if paper_shown else None,
        "definitions": DEFINITIONS,
        "params": params,
        "inputs": inputs,
        "evaluated": {"kind": mode, "path": str(source)},
        "search": search_info,
        "rerank": reranked,
        "package_version": __version__,
    }
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2, default=str) + "\n")
    atomic_write_text(out / "report.md", _report(spec, record, paper_shown, suite.reference_method))
    if tasks_out:
        files["chart"] = _write_chart(out, spec, tasks_out, paper_shown, suite.reference_method)
    finish_stage(plan, {"queries": len(qid_array), "run_rows": table.num_rows}, {"files": files})
    return record


def _write_chart(
    out: Path, spec: BenchmarkSpec, tasks: list[dict[str, Any]], paper_shown: bool, method: str
) -> str:
    """One bar per task (its headline metric), the paper's value as a tick where there is one."""
    shown = [t for t in tasks if not t["headline"].endswith("_rank")]
    series: dict[str, list[float | None]] = {"this run": [t["score"] for t in shown]}
    if paper_shown and any(t["headline"] in t["paper"] for t in shown):
        series[f"paper: {method}"] = [
            t["paper"][t["headline"]] / 100 if t["headline"] in t["paper"] else None for t in shown
        ]
    task_bars(
        out / "scores.png",
        f"{spec.display} zero-shot",
        [f"{t['task']} {t['headline']}" for t in shown],
        series,
        xlabel="score (%)",
    )
    return "scores.png"


def _write_circo_submission(out: Path, rankings: dict[str, list[str]], qids: list[str], run: Path) -> str:
    """CIRCO server format (README 'Submission Format'): {"<query id>": [top-50 image ids as ints]},
    every test query present, no duplicates."""
    missing = [q for q in qids if q not in rankings]
    if missing:
        raise UmarvelError(
            f"{len(missing)} test queries have no results (e.g. {missing[0]!r}); the server needs all of them",
            file=run,
        )
    submission = {}
    for qid in sorted(qids, key=int):
        top: list[int] = []
        for did in rankings[qid]:
            if int(did) not in top:
                top.append(int(did))
            if len(top) == SUBMISSION_DEPTH:
                break
        submission[qid] = top
    name = "circo_test_submission.json"
    atomic_write_text(out / name, json.dumps(submission) + "\n")
    return name


def _report(spec: BenchmarkSpec, record: dict[str, Any], paper_shown: bool, method: str) -> str:
    lines = [f"# {spec.display} ({record['split']}), zero-shot", ""]
    lines.append(f"- release: {spec.source}")
    lines.append(f"- evaluated: {record['evaluated']['kind']} `{record['evaluated']['path']}`")
    if not record["has_ground_truth"]:
        lines.append(
            "- no ground truth for this split: submit `circo_test_submission.json` to the CIRCO evaluation "
            "server (https://circo.micc.unifi.it/)"
        )
    if paper_shown:
        lines.append(f"- paper: {method} (umarvel_spec.md §8.3/§8.4), beside ours; same split and protocol")
    elif record["synthetic"]:
        lines.append("- synthetic data (the demo's), so the paper's numbers are not shown")
    rerank = record.get("rerank")
    if rerank:
        reranked_what = (
            f"top-{rerank['topk']} of each query"
            if rerank["topk"]
            else f"the {rerank['reranked_pairs']:,} scored pairs of {rerank['reranked_queries']:,} queries"
        )
        lines.append(
            f"- U-MARVEL+ reranking: {reranked_what} fused as score + W * P(Yes), "
            f"W = {rerank['weight']:g} ({rerank['weight_source']}); teacher scores `{rerank['scores']}`"
        )
        if rerank["tuning"]:
            tried = ", ".join(
                f"{w:g}: {_pct(v)}"
                for w, v in zip(rerank["tuning"]["grid"], rerank["tuning"]["val_scores"], strict=True)
            )
            lines.append(f"- W tuned on the {rerank['tuning']['split']} split (mean headline per W: {tried})")
    retrieval = {t["task"]: t["metrics"] for t in rerank["retrieval_tasks"]} if rerank else None
    ours = "reranked | retrieval only" if rerank else "ours"
    lines += [
        "",
        f"| task | direction | protocol | queries | metric | {ours} | paper |",
        "|---|---|---|---|---|---|---|" + ("---|" if rerank else ""),
    ]
    for t in record["tasks"]:
        for name, v in t["metrics"].items():
            paper = t["paper"].get(name) if paper_shown else None
            before = f" | {_value(name, retrieval[t['task']][name])}" if retrieval is not None else ""
            lines.append(
                f"| {t['task']} | {t['direction']} | {t['protocol']} | {t['n_queries']:,} | {name} | "
                f"{_value(name, v)}{before} | {'–' if paper is None else f'{paper:.1f}'} |"
            )
    if record["headline"]:
        h = record["headline"]
        paper = h["paper"] if paper_shown else None
        lines += [
            "",
            f"**{h['name']}: {_pct(h['score'])}** (paper: {'–' if paper is None else f'{paper:.1f}'})",
        ]
    lines += ["", "Definitions:", *(f"- {k}: {v}" for k, v in DEFINITIONS.items()), ""]
    return "\n".join(lines)


__all__ = ["evaluate_zeroshot"]
