"""Each task's chance level: the UniIR Recall@k a random ranking of its pool would score, averaged
over its queries (a query with P positives in a pool of N hits with probability 1 - C(N-P,k)/C(N,k))."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from umarvel_cli.artifacts.shards import read_table
from umarvel_cli.data.mbeir.layout import global_pool_of
from umarvel_cli.data.mbeir.tasks import MBEIRSpec
from umarvel_cli.evaluation.prepared import PreparedSplit
from umarvel_cli.metrics.chart import chance_recall


def pool_sizes(data: Path) -> dict[str, int]:
    counts = pc.value_counts(read_table(data, "pools", columns=["pool"]).column("pool"))
    return {row["values"]: row["counts"] for row in counts.to_pylist()}


def chance_levels(
    prepared: PreparedSplit, spec: MBEIRSpec, pool: str, k_of: dict[str, int]
) -> dict[str, float | None]:
    """{task: chance Recall@k} for the tasks of `k_of`; None where the pool size is unknown."""
    sizes = pool_sizes(prepared.data)
    known = {t.stem: t for t in spec.tasks}
    out: dict[str, float | None] = {}
    for task, k in k_of.items():
        name = global_pool_of(spec, prepared.split) if pool == "global" else None
        if pool == "local" and task in known:
            name = known[task].pool(prepared.split)
        size = sizes.get(name) if name else None
        qids = prepared.qids_of(task)
        if not size or not qids:
            out[task] = None
            continue
        hits = [
            chance_recall(size, sum(1 for r in prepared.qrels.get(q, {}).values() if r > 0), k) for q in qids
        ]
        out[task] = sum(hits) / len(hits)
    return out
