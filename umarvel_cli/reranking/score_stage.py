"""`rerank score`: P(Yes) of each query's retrieved top-k, written as a `teacher` table.

Candidates come from a run (any `search`/`eval` output or TREC file) or from a retriever searched
here through the same embed and search functions as `eval --model`. Queries can be sampled with
the one per-task sampler (`data.subsample`). Queries are scored in fixed chunks, one shard per
chunk, so a killed run resumes at the first unfinished chunk; the manifest is written last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from umarvel_cli.artifacts import (
    TABLES,
    Manifest,
    ShardWriter,
    fingerprint,
    finish_stage,
    plan_stage,
    read_table,
)
from umarvel_cli.artifacts.manifest import require_manifest
from umarvel_cli.console import info, make_progress
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.data.records import Record
from umarvel_cli.data.subsample import check_share, sample_per_task
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.folder import resolve_model_dir
from umarvel_cli.reranking.teacher import STAGE, TABLE

QUERIES_PER_SHARD = 64  # 64 x top-50 = 3,200 pairs per shard


def top_k(run: pa.Table, k: int) -> dict[str, list[tuple[str, float]]]:
    """Each query's first `k` candidates with their scores, by the metrics' order (score, rank, id)."""
    ordered = run.sort_by(
        [("qid", "ascending"), ("score", "descending"), ("rank", "ascending"), ("did", "ascending")]
    )
    out: dict[str, list[tuple[str, float]]] = {}
    for q, d, s in zip(
        ordered.column("qid").to_pylist(),
        ordered.column("did").to_pylist(),
        ordered.column("score").to_pylist(),
        strict=True,
    ):
        rows = out.setdefault(q, [])
        if len(rows) < k:
            rows.append((d, float(s)))
    return out


def query_tasks(data: Path) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """All query ids in table order, each one's task stem and split."""
    from umarvel_cli.evaluation.prepared import task_stem

    spec = load_mbeir_spec()
    t = read_table(data, "queries", columns=["qid", "split", "task_id", "dataset_id"]).to_pylist()
    task_of = {r["qid"]: task_stem(spec, r["dataset_id"], r["task_id"]) for r in t}
    return [r["qid"] for r in t], task_of, {r["qid"]: r["split"] for r in t}


def _records(data: Path, qids: Sequence[str], split_of: dict[str, str], dids: set[str]) -> tuple[dict, dict]:
    from umarvel_cli.embedding.sources import candidate_records, query_records

    queries: dict[str, Record] = {}
    for split in sorted({split_of[q] for q in qids}):
        queries.update({r.id: r for r in query_records(data, split)})
    candidates = {r.id: r for r in candidate_records(data, ids=dids)}
    return queries, candidates


def _decoded(record: Record) -> Record:
    """The record with its image file decoded (a query's image is in all of its top-k pairs)."""
    from umarvel_cli.models.inputs.images import load_image

    if record.image is None or not isinstance(record.image, str | Path):
        return record
    return replace(record, image=load_image(record.image, record.id))


def _candidate_run(
    data: Path,
    out: Path,
    run: Path | None,
    retriever: Path | None,
    split: str | None,
    pool: str,
    topk: int,
    device: str | None = None,
) -> pa.Table:
    from umarvel_cli.evaluation.run_input import read_run, validate_run

    if run is not None:
        table = read_run(run)
        qids = read_table(data, "queries", columns=["qid"]).column("qid").combine_chunks()
        dids = read_table(data, "candidates", columns=["did"]).column("did").combine_chunks()
        validate_run(table, qids, dids, "prepared", run)
        return table
    from umarvel_cli.evaluation.model_search import search_with_model
    from umarvel_cli.evaluation.prepared import load_split

    spec = load_mbeir_spec()
    search_with_model(
        Path(retriever),
        load_split(data, split, spec),
        spec,
        pool,
        out / "retrieval",
        topk=topk,
        device=device,
    )
    return read_table(out / "retrieval", "run")  # written just now by this stage


def _check_options(run: Path | None, retriever: Path | None, split: str | None, pool: str, topk: int) -> None:
    if (run is None) == (retriever is None):
        raise UmarvelError("give exactly one of --run or --retriever", field="--run/--retriever")
    if retriever is not None and split is None:
        raise UmarvelError("--retriever needs --split", field="--split", expected="train, val or test")
    if pool not in ("local", "global"):
        raise UmarvelError(f"unknown pool {pool!r}", field="--pool", expected="local or global")
    if topk < 1:
        raise UmarvelError(f"--topk must be >= 1, not {topk}", field="--topk")


def rerank_score(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    run: str | Path | None = None,
    retriever: str | Path | None = None,
    split: str | None = None,
    pool: str = "local",
    topk: int = 50,
    sample: float | None = None,
    seed: int = 42,
    batch_size: int = 16,
    queries_per_shard: int = QUERIES_PER_SHARD,
    device: str | None = None,
    force: bool = False,
) -> Manifest:
    """Score each (sampled) query's top-k with the reranker into OUT/teacher; returns the manifest."""
    from umarvel_cli.models.reranker import Reranker, check_reranker_folder, model_kind

    model, data, out = Path(model), Path(data), Path(out)
    run = Path(run) if run is not None else None
    retriever = Path(retriever) if retriever is not None else None
    _check_options(run, retriever, split, pool, topk)
    if sample is not None:
        check_share(sample)
    require_manifest(data)
    check_reranker_folder(model)  # an embedding model or bad tokenizer: refused before anything is written
    if retriever is not None and model_kind(resolve_model_dir(retriever)) != "embedding":
        raise UmarvelError("this is a reranker, not an embedding model", file=retriever, field="--retriever")
    source = run if run is not None else retriever
    params: dict[str, Any] = {"topk": topk, "sample": sample, "seed": seed, "chunk": queries_per_shard}
    params.update({"mode": "run"} if run is not None else {"mode": "retriever", "split": split, "pool": pool})
    inputs = {"model": fingerprint(model), "data": fingerprint(data), params["mode"]: fingerprint(source)}
    table = _candidate_run(data, out, run, None, None, pool, topk) if run is not None else None
    plan = plan_stage(out, STAGE, params, inputs, force=force)
    if plan.up_to_date:
        info(f"rerank score: {out} is up to date")
        return require_manifest(out)
    if table is None:
        table = _candidate_run(data, out, None, retriever, split, pool, topk, device)

    lists = top_k(table, topk)
    ordered, task_of, split_of = query_tasks(data)
    qids = [q for q in ordered if q in lists]
    if sample is not None:
        qids = sample_per_task(qids, task_of, sample, seed)
    queries, candidates = _records(data, qids, split_of, {d for q in qids for d, _ in lists[q]})
    reranker = Reranker.from_pretrained(model, device=device)

    writer = ShardWriter(out, TABLE, TABLES[TABLE], rows_per_shard=1 << 40, resume=plan.resume)
    chunks = [qids[i : i + queries_per_shard] for i in range(0, len(qids), queries_per_shard)]
    total = sum(len(lists[q]) for q in qids)
    with make_progress("pairs") as progress:
        task = progress.add_task("rerank", total=total, rate="")
        progress.update(task, completed=sum(len(lists[q]) for c in chunks[: writer.next_shard] for q in c))

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:,.1f} pairs/s")

        for chunk in chunks[writer.next_shard :]:
            rows = [(q, d, r, s) for q in chunk for r, (d, s) in enumerate(lists[q], start=1)]
            decoded = {q: _decoded(queries[q]) for q in chunk}  # one decode per query, not one per pair
            pairs = [(decoded[q], candidates[d]) for q, d, _, _ in rows]
            items = reranker.encode_pairs(pairs, defer_decode=True)
            scores = reranker.score_inputs(items, batch_size, on_batch=advance)
            writer.write_columns(
                {
                    "qid": [r[0] for r in rows],
                    "did": [r[1] for r in rows],
                    "rank": [r[2] for r in rows],
                    "retrieval_score": [r[3] for r in rows],
                    "rerank_score": scores,
                }
            )
            writer.flush()  # one shard per chunk: what resume counts
    pairs_done = writer.close()
    per_task: dict[str, int] = {}
    for q in qids:
        per_task[task_of[q]] = per_task.get(task_of[q], 0) + 1
    return finish_stage(
        plan,
        {"queries": len(qids), "pairs": pairs_done, "shards": len(chunks)},
        extra={"queries_per_task": per_task, "source": str(source)},
    )
