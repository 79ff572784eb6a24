"""`umarvel eval mbeir`: M-BEIR evaluation of a model or of any system's run, exactly as UniIR scores it.

Headline per task: UniIR "Recall@k" (a hit rate), k = the task's `metric_k` in mbeir.yaml (10 for
the Fashion200K tasks and FashionIQ, 5 otherwise), in UniIR's fixed order, and the unweighted mean
over the tasks present. Beside it: true recall@k, hit@1/5/10/50/100, MRR@10 and NDCG@10.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from umarvel_cli.artifacts import fingerprint, finish_stage, plan_stage, read_manifest, read_table
from umarvel_cli.artifacts.atomic import is_stdio
from umarvel_cli.artifacts.trec import write_trec_run
from umarvel_cli.console import info, warn
from umarvel_cli.data.mbeir.tasks import MBEIRSpec, load_mbeir_spec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.chance import chance_levels
from umarvel_cli.evaluation.model_search import EMBEDDINGS, search_with_model
from umarvel_cli.evaluation.outputs import METRICS_JSON, RUN_TREC, summary_to_json, write_report_files
from umarvel_cli.evaluation.pool_check import rows_outside_pool
from umarvel_cli.evaluation.prepared import MBEIR_STAGE, PreparedSplit, candidate_ids, load_split
from umarvel_cli.evaluation.published import load_published
from umarvel_cli.evaluation.rerank_fusion import RerankOptions, rerank_run
from umarvel_cli.evaluation.run_input import read_run, run_fingerprint, to_rankings, validate_run
from umarvel_cli.metrics.aggregate import evaluate_queries, summarize_tasks
from umarvel_cli.metrics.ranking import DEFAULT_CUTOFFS, METRIC_DEFINITIONS
from umarvel_cli.metrics.report import ComparisonRow
from umarvel_cli.models.folder import resolve_model_dir
from umarvel_cli.version import __version__

STAGE = "eval-mbeir"
HEADLINE_MAX_K = 10  # Fashion200K and FashionIQ are scored at 10
REFERENCE_METHOD = "U-MARVEL (Qwen2VL-7B)"
_SHORT = {"text": "t", "image": "i", "image,text": "(i,t)"}


def task_labels(spec: MBEIRSpec) -> dict[str, str]:
    """Column labels as in the paper: dataset, query→candidate modality, and R@10 where it applies."""
    out = {}
    for t in spec.tasks:
        label = (
            f"{spec.display.get(t.dataset_id, t.dataset)} {_SHORT.get(t.query_modality, t.query_modality)}→"
        )
        label += _SHORT.get(t.cand_modality, t.cand_modality)
        out[t.stem] = label + (f" (R@{t.metric_k})" if t.metric_k != 5 else "")
    return out


def setting_name(pool: str, modality_filter: bool) -> str:
    if pool == "local":
        return "local pools (M-BEIR_local)"
    if modality_filter:
        return "global union pool with modality filter (NON-STANDARD, not comparable to published numbers)"
    return "global union pool (M-BEIR, no modality filter, as UniIR)"


def _check_options(
    split: str, pool: str, model: Path | None, run: Path | None, modality_filter: bool, topk: int
):
    if split not in ("val", "test"):
        raise UmarvelError(f"unknown split {split!r}", field="--split", expected="val or test")
    if pool not in ("local", "global"):
        raise UmarvelError(f"unknown pool {pool!r}", field="--pool", expected="local or global")
    if (model is None) == (run is None):
        raise UmarvelError("give exactly one of --model or --run", field="--model/--run")
    if modality_filter and (pool != "global" or model is None):
        raise UmarvelError(
            "--modality-filter only applies to --pool global with --model (a given run is scored as it is)",
            field="--modality-filter",
        )
    if topk < HEADLINE_MAX_K:
        raise UmarvelError(
            f"--topk {topk} is below the deepest headline cut-off (Recall@{HEADLINE_MAX_K})",
            field="--topk",
            expected=f">= {HEADLINE_MAX_K}",
        )


def evaluate_mbeir(
    data: Path,
    split: str,
    pool: str,
    out: Path,
    model: Path | None = None,
    run: Path | None = None,
    modality_filter: bool = False,
    topk: int = 100,
    force: bool = False,
    device: str | None = None,
    rerank: RerankOptions | None = None,
) -> dict[str, Any]:
    """Evaluate and write metrics.json, report.md, per_task.csv, run.trec and scores.png in `out`.

    Returns the metrics.json record. `out` keeps embeddings between runs (per their manifests); the
    evaluation itself is redone when inputs or options change, or with `force`. `rerank` (U-MARVEL+)
    reranks the run's top-k and fuses; the report then shows retrieval-only beside it.
    """
    data, out = Path(data), Path(out)
    _check_options(split, pool, model, run, modality_filter, topk)
    model = resolve_model_dir(model) if model is not None else None  # a train output names its model
    rerank = rerank or RerankOptions()
    rerank.check()
    if rerank.active and run is not None and is_stdio(run):
        raise UmarvelError("--rerank needs the run as a file or folder, not standard input", field="--run")
    spec = load_mbeir_spec()
    prepared = load_split(data, split, spec)
    source = Path(model if model is not None else run)
    params = {"split": split, "pool": pool, "modality_filter": modality_filter, "topk": topk}
    params["mode"] = "model" if model is not None else "run"
    given = None
    if run is not None:  # read and checked before anything is written
        given = read_run(run)
        validate_run(given, pa.array(prepared.qids, type=pa.string()), candidate_ids(data), split, run)
    inputs = {"data": fingerprint(data), params["mode"]: run_fingerprint(source, given)}
    if rerank.active:
        params.update(rerank.params())
        inputs.update(rerank.inputs())
    input_paths = [data, source] if run is None or not is_stdio(run) else [data]
    plan = plan_stage(out, STAGE, params, inputs, force, keep=(EMBEDDINGS,), input_paths=input_paths)
    if plan.up_to_date:
        info(f"eval: {out} is up to date")
        return json.loads((out / METRICS_JSON).read_text())

    search_info: dict[str, Any] | None = None
    if model is not None:
        search_info = search_with_model(
            model, prepared, spec, pool, out, modality_filter, topk, device=device
        )
        table = read_table(out, "run")
        validate_run(table, pa.array(prepared.qids, type=pa.string()), candidate_ids(data), split, out)
    else:
        table = given
    outside = rows_outside_pool(table, prepared, spec, pool)
    # a model run is `topk` deep: hit@50/100 are only computed when it reaches them
    cutoffs = DEFAULT_CUTOFFS if model is None else tuple(c for c in DEFAULT_CUTOFFS if c <= topk)

    def summarize(rankings):
        outcomes = evaluate_queries(
            prepared.qids, rankings.by_qid, rankings.relevance(prepared.qrels), cutoffs=cutoffs
        )
        return summarize_tasks(
            outcomes, prepared.task_of, {t.stem: t.metric_k for t in spec.tasks}, spec.order
        )

    rankings = to_rankings(table)
    summary = summarize(rankings)
    retrieval_only, rerank_info = None, None
    if rerank.active:
        run_source = out if model is not None else Path(run)
        table, rerank_info = rerank_run(table, run_source, prepared, spec, rerank, out, model, pool, topk)
        rankings = to_rankings(table)
        retrieval_only, summary = summary, summarize(rankings)
    ordered = table.sort_by(
        [("qid", "ascending"), ("score", "descending"), ("rank", "ascending"), ("did", "ascending")]
    )
    write_trec_run(
        out / RUN_TREC, ordered.to_batches(max_chunksize=262_144), run_id=f"umarvel_{pool}_{split}"
    )

    labels = task_labels(spec)
    published = _published(prepared, pool) if prepared.is_mbeir and split == "test" else []
    record = _record(prepared, params, inputs, source, summary, labels, modality_filter, search_info)
    record["retrieved_outside_pool"] = outside
    record["chance"] = chance_levels(prepared, spec, pool, {t.task: t.k for t in summary.tasks})
    if retrieval_only is not None:
        record["rerank"] = {**rerank_info, "retrieval_only": summary_to_json(retrieval_only, labels)}
        before = ComparisonRow(
            "retrieval only (before rerank)",
            {t.task: 100 * t.score for t in retrieval_only.tasks},
            100 * (retrieval_only.mean or 0.0),
        )
        published = [*published, before]
    notes = [
        f"data: `{data}` ({prepared.manifest.stage}), split `{split}`, {len(prepared.qids):,} queries",
        f"setting: {setting_name(pool, modality_filter)}",
        f"evaluated: {'model' if model is not None else 'run'} `{source}`",
        "metric: Recall@k as UniIR computes it = share of queries with >= 1 positive in the top k "
        "(k = 10 for Fashion200K and FashionIQ, 5 otherwise); queries without positives count as misses",
    ]
    strays = {t: n for t, n in outside.items() if n}
    if strays and not modality_filter:
        message = (
            f"{sum(strays.values()):,} retrieved candidates lie outside the {pool} pool their query "
            f"should search ({', '.join(f'{t}: {n}' for t, n in strays.items())}); was the run made for "
            "another pool or split?"
        )
        notes.append(f"WARNING: {message}")
        warn(f"eval: {message}")
    for message in _coverage_warnings(summary, rankings.by_qid, prepared, spec):
        notes.append(f"WARNING: {message}")
        warn(f"eval: {message}")
    if not prepared.is_mbeir:
        notes.append("published numbers are not shown: these tables are not M-BEIR (demo or other data)")
    elif split != "test":
        notes.append("published numbers are not shown: they are on the M-BEIR test split, this is val")
    if rerank_info is not None:
        notes.append(
            f"U-MARVEL+: {rerank_info['reranked_pairs']:,} candidates of {rerank_info['reranked_queries']:,} "
            f"queries reranked, fused = cosine + {rerank_info['weight']} x P(Yes) "
            f"(weight {rerank_info['weight_source']}); the 'retrieval only' row is the same run before reranking"
        )
    reference = next((r for r in published if r.method == REFERENCE_METHOD), None)
    files = write_report_files(
        out,
        record,
        summary,
        labels,
        spec.order if prepared.is_mbeir else prepared.tasks,
        f"M-BEIR {split}, {pool}",
        notes,
        published,
        reference,
    )
    counts = {"queries": len(prepared.qids), "tasks": len(summary.tasks), "run_rows": table.num_rows}
    finish_stage(plan, counts, {"files": files})
    return record


def _coverage_warnings(summary, by_qid, prepared: PreparedSplit, spec: MBEIRSpec) -> list[str]:
    """Absent tasks (the mean is over those present) and rankings shorter than their task's k."""
    messages = []
    if summary.missing and prepared.manifest.stage == MBEIR_STAGE:  # M-BEIR layout (real or demo)
        messages.append(
            f"the mean is over the {len(summary.tasks)} tasks present, not all {len(spec.order)}; "
            f"absent: {', '.join(summary.missing)}"
        )
    k_of = {t.task: t.k for t in summary.tasks}
    shallow: dict[str, int] = {}
    for qid in prepared.qids:
        task = prepared.task_of[qid]
        ranking = by_qid.get(qid)
        if ranking and len(ranking) < k_of.get(task, 5):
            shallow[task] = shallow.get(task, 0) + 1
    if shallow:
        messages.append(
            "some rankings are shorter than their task's k (a pool smaller than k, or a run cut short): "
            + ", ".join(f"{t}: {n} queries" for t, n in shallow.items())
        )
    return messages


def _published(prepared: PreparedSplit, pool: str) -> list[ComparisonRow]:
    rows = load_published()["local" if pool == "local" else "global"]
    return [ComparisonRow(r.method, r.values, r.avg) for r in rows]


def _record(
    prepared: PreparedSplit,
    params: dict[str, Any],
    inputs: dict[str, str],
    source: Path,
    summary,
    labels: dict[str, str],
    modality_filter: bool,
    search_info: dict[str, Any] | None,
) -> dict[str, Any]:
    source_manifest = read_manifest(source) if not is_stdio(source) and source.is_dir() else None
    return {
        "benchmark": "M-BEIR",
        "split": prepared.split,
        "pool": params["pool"],
        "setting": setting_name(params["pool"], modality_filter),
        "standard": not modality_filter,
        "headline": {
            "name": "Recall@k (UniIR hit rate)",
            "mean": summary.mean,
            "over_tasks": len(summary.tasks),
            "missing_tasks": summary.missing,
        },
        **summary_to_json(summary, labels),
        "definitions": METRIC_DEFINITIONS,
        "params": params,
        "inputs": inputs,
        "evaluated": {
            "kind": params["mode"],
            "path": str(source),
            "manifest_hash": inputs[params["mode"]],
            "manifest_stage": source_manifest.stage if source_manifest else None,
        },
        "data_manifest_hash": inputs["data"],
        "search": search_info,
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


__all__ = ["evaluate_mbeir", "task_labels"]
