"""`eval --model`: embed the split's queries and the pools it needs, and search them through
`retrieval.search_stage.search_exact` (the search `umarvel search` runs) into one run table.

Embeddings go to OUT/embeddings/{queries,pool-NAME}; `run_embed` skips those whose manifest says
they are up to date, so a second evaluation (say global after local) reuses them.
Local: each task's queries against its own pool (on the train split, which has none, the task's
rebuilt pool inside the union train pool, as `umarvel mine --pool local`). Global: all queries against the union of the
local pools of the split (deduplicated by id, no modality filter, as UniIR); with
`modality_filter`, each query only sees candidates of its task's target modality (non-standard).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts import read_table
from umarvel_cli.console import info
from umarvel_cli.data.mbeir.tasks import MBEIRSpec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.prepared import PreparedSplit, ids_by_modality
from umarvel_cli.retrieval.embeddings import EmbeddingSet, ids_in, open_embeddings
from umarvel_cli.retrieval.search_stage import SearchGroup, search_exact

EMBEDDINGS = (
    "embeddings"  # OUT/embeddings/<set>: each with its own manifest, kept when the evaluation is redone
)


def load_run_embed() -> Callable[..., Any]:
    """`umarvel_cli.embedding.run_embed`, imported only when a model is evaluated."""
    try:
        from umarvel_cli.embedding import run_embed
    except ImportError as e:
        raise UmarvelError(
            "evaluating --model needs the embedder (umarvel_cli.embedding.run_embed), which is not available "
            "yet in this build",
            field="--model",
            expected="--run with a run from `umarvel search` or any TREC run file",
        ) from e
    return run_embed


def _task_spec(spec: MBEIRSpec, task: str):
    try:
        return spec.task(task)
    except KeyError:
        raise UmarvelError(
            f"task {task!r} is not one of the M-BEIR tasks, so its local pool is unknown",
            expected="queries of the 16 M-BEIR (dataset, task) pairs",
        ) from None


def _rebuilt_local(prepared: PreparedSplit, spec: MBEIRSpec, available: set[str], union: str) -> bool:
    """True when the split's local pools are not in the tables but its union pool is (the train split)."""
    missing = any(_task_spec(spec, t).pool(prepared.split) not in available for t in prepared.tasks)
    return missing and union in available


def _existing_pools(data: Path) -> set[str]:
    t = read_table(data, "pools", columns=["pool"])
    return set(t.column("pool").unique().to_pylist())


def search_with_model(
    model: Path,
    prepared: PreparedSplit,
    spec: MBEIRSpec,
    pool: str,
    out: Path,
    modality_filter: bool = False,
    topk: int = 100,
    device: str | None = None,
) -> dict[str, Any]:
    """Write OUT/run (the run table) and return what was embedded and searched."""
    run_embed = load_run_embed()
    data, split = prepared.data, prepared.split
    emb_root = out / EMBEDDINGS
    run_embed(model, data, split, "queries", emb_root / "queries", device=device)
    q_set = open_embeddings(emb_root / "queries")
    q_ids, q_x = q_set.read()
    row_of = {q: i for i, q in enumerate(q_ids.to_pylist())}
    missing = [q for q in prepared.qids if q not in row_of]
    if missing:
        raise UmarvelError(
            f"{len(missing)} {split} queries have no embedding (e.g. {missing[0]!r})",
            file=emb_root / "queries",
        )

    def embed_pool(name: str) -> EmbeddingSet:
        target = emb_root / f"pool-{name}"
        run_embed(model, data, split, "candidates", target, pool=name, device=device)
        return open_embeddings(target)

    def group(label: str, qids: list[str], sets: list[EmbeddingSet], keep=None) -> SearchGroup:
        rows = np.fromiter((row_of[q] for q in qids), dtype=np.int64, count=len(qids))
        return SearchGroup(label, pa.array(qids, type=pa.string()), q_x[rows], sets, keep)

    available = _existing_pools(data)
    groups: list[SearchGroup] = []
    union = f"union_{split}"
    if pool == "local" and _rebuilt_local(prepared, spec, available, union):
        # M-BEIR has no local train pools: each task searches its rebuilt one (spec 9.2), as `mine` does
        from umarvel_cli.mining.pools import PoolIndex, pool_index

        union_set = embed_pool(union)
        index: PoolIndex = pool_index(data, union_set.ids())
        for task in prepared.tasks:
            local = index.ids.filter(pa.array(index.local_mask(_task_spec(spec, task))))
            groups.append(group(task, prepared.qids_of(task), [union_set], ids_in(local)))
    elif pool == "local":
        for task in prepared.tasks:
            name = _task_spec(spec, task).pool(split)
            if name not in available:
                raise UmarvelError(f"local pool {name!r} of task {task} is not in the pools table", file=data)
            groups.append(group(task, prepared.qids_of(task), [embed_pool(name)]))
    else:
        names = [n for n in dict.fromkeys(t.pool(split) for t in spec.tasks) if n in available]
        sets = [embed_pool(n) for n in names]
        info(f"eval: global pool = union of {len(names)} local {split} pools")
        if not modality_filter:
            groups.append(group("union", list(prepared.qids), sets))
        else:
            by_mod = ids_by_modality(data)
            wanted: dict[str, list[str]] = {}
            for q in prepared.qids:
                wanted.setdefault(_task_spec(spec, prepared.task_of[q]).cand_modality, []).append(q)
            for modality, qids in wanted.items():
                allowed = ids_in(by_mod.get(modality, pa.array([], type=pa.string())))
                groups.append(group(f"union[{modality}]", qids, sets, allowed))

    searched = search_exact(out, groups, topk)
    return {
        "embeddings": {p.name: str(p) for p in sorted(emb_root.iterdir()) if p.is_dir()},
        "searched": searched.groups,
        "run_rows": searched.rows,
    }
