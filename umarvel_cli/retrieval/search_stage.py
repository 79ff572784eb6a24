"""The `search` stage: top-k for a query embedding set, exact (streaming) or through a faiss index,
written as a `run` table and, on request, a TREC run file.

`search_exact` is the one exact search path: `umarvel search --embeddings` and `eval mbeir --model`
(each task's queries against its pool, or all queries against the union of pools) both go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts import Manifest, fingerprint, finish_stage, plan_stage
from umarvel_cli.artifacts.atomic import check_replaceable, is_stdio
from umarvel_cli.artifacts.manifest import require_manifest
from umarvel_cli.artifacts.shards import iter_batches
from umarvel_cli.artifacts.trec import write_trec_run
from umarvel_cli.console import info
from umarvel_cli.errors import UmarvelError
from umarvel_cli.retrieval.embeddings import EmbeddingSet, open_embeddings
from umarvel_cli.retrieval.exact import chain_sets, exact_search, pick_device
from umarvel_cli.retrieval.run_table import RUN_TABLE, iter_run_batches, write_run

STAGE = "search"


@dataclass
class SearchGroup:
    """Queries that search one pool: the union of `candidates` (an id in two sets is searched once),
    optionally narrowed by `keep(ids) -> bool mask` (a modality filter)."""

    label: str
    qids: pa.Array
    queries: np.ndarray
    candidates: Sequence[EmbeddingSet]
    keep: Callable[[pa.Array], np.ndarray] | None = None


@dataclass
class SearchedRun:
    rows: int
    groups: list[dict[str, Any]]  # per group: label, queries, candidates searched


def search_exact(
    out: str | Path,
    groups: Iterable[SearchGroup],
    topk: int,
    query_block: int = 4096,
    device: str | None = None,
) -> SearchedRun:
    """Exact top-k of every group's queries against its pool, written as one run table in `out`."""
    searched: list[dict[str, Any]] = []
    rows = write_run(out, exact_run_batches(groups, topk, searched, query_block, device))
    return SearchedRun(rows, searched)


def exact_run_batches(
    groups: Iterable[SearchGroup],
    topk: int,
    searched: list[dict[str, Any]],
    query_block: int = 4096,
    device: str | None = None,
) -> Iterator[pa.Table]:
    """Run-table batches of every group's exact top-k, group by group; appends what each searched
    to `searched` (for callers that write these rows beside others into one run)."""
    for group in groups:
        blocks = chain_sets(group.candidates, keep=group.keep, dedupe=len(group.candidates) > 1)
        result = exact_search(group.queries, blocks, topk, query_block=query_block, device=device)
        searched.append(
            {"group": group.label, "queries": len(group.qids), "candidates": len(result.candidate_ids)}
        )
        yield from iter_run_batches(group.qids, result)


def run_search(
    queries: str | Path,
    out: str | Path,
    *,
    index: str | Path | None = None,
    embeddings: str | Path | None = None,
    topk: int = 100,
    batch_size: int = 4096,
    trec: str | Path | None = None,
    gpu: bool | None = None,
    force: bool = False,
) -> Manifest:
    """Search every query of `queries` against an index or (exactly) against candidate embeddings."""
    if (index is None) == (embeddings is None):
        raise UmarvelError("give exactly one of --index or --candidates", field="--index/--candidates")
    if topk < 1:
        raise UmarvelError(f"--topk must be >= 1, not {topk}", field="--topk")
    q_set = open_embeddings(queries, "--queries")
    source = Path(index if index is not None else embeddings)
    inputs = {"queries": fingerprint(q_set.root), "candidates": fingerprint(source)}
    params = {"topk": topk, "method": "faiss" if index is not None else "exact", "trec": str(trec or "")}
    to_stdout = is_stdio(trec)
    if trec is not None and not to_stdout:
        check_replaceable(Path(trec))  # before any work: never over a link, FIFO or device
    plan = plan_stage(out, STAGE, params, inputs, force, input_paths=[q_set.root, source])
    if plan.up_to_date:
        info(f"search: {out} is up to date")
        if to_stdout:
            write_trec_run(trec, iter_batches(out, RUN_TABLE), run_id="umarvel")
        return require_manifest(out, STAGE)
    qids, qx = q_set.read()
    if index is not None:
        from umarvel_cli.retrieval.faiss_index import load_index, search_index

        loaded = load_index(index, gpu=gpu)
        dim = loaded.manifest.extra.get("dim")
        if dim is not None and dim != q_set.dim:
            raise UmarvelError(
                f"index holds {dim}-d vectors, queries are {q_set.dim}-d",
                file=index,
                expected="query and candidate embeddings from the same model",
            )
        result = search_index(loaded, qx, topk, query_block=max(batch_size, 1))
        rows = write_run(plan.out, iter_run_batches(qids, result))
        extra = {"method": "faiss", "device": loaded.device, "factory": loaded.manifest.extra.get("factory")}
    else:
        c_set = open_embeddings(embeddings, "--candidates")
        _warn_if_models_differ(q_set, c_set)
        device = "cpu" if gpu is False else pick_device()
        if gpu and device != "cuda":
            raise UmarvelError(
                "--device cuda asked for, but torch sees no GPU", field="--device", expected="--device cpu"
            )
        group = SearchGroup("all", qids, qx, [c_set])
        rows = search_exact(plan.out, [group], topk, query_block=batch_size, device=device).rows
        extra = {"method": "exact", "device": device, "candidates": c_set.count}
    if trec is not None:
        write_trec_run(trec, iter_batches(plan.out, RUN_TABLE), run_id="umarvel")
    extra.update({"topk": topk, "dim": q_set.dim, "trec": str(trec) if trec else None})
    declared = [Path(trec).absolute()] if trec is not None and not to_stdout else []
    return finish_stage(plan, {"queries": len(qids), "rows": rows}, extra, outputs=declared)


def _warn_if_models_differ(q_set, c_set) -> None:
    """Queries and candidates embedded by different models give meaningless scores."""
    models = [s.manifest.extra.get("model") if s.manifest else None for s in (q_set, c_set)]
    if None not in models and models[0] != models[1]:
        info(f"[yellow]warning: queries were embedded with {models[0]}, candidates with {models[1]}[/]")
