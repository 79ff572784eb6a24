"""`eval zeroshot --model`: embed a benchmark's queries and each task's pool, write one run.

Ranking tasks search their whole pool (exact inner product, top k); gallery and choice tasks score
each query against its own gallery only (every member gets a score, so the ranking within the gallery
is complete). Embeddings go to OUT/embeddings/{queries,pool-TASK} and are reused while up to date.
Video items (modality `video`, the file in `image`) are embedded through the same input pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts import TABLES
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.evaluation.model_search import load_run_embed
from umarvel_cli.retrieval.embeddings import open_embeddings
from umarvel_cli.retrieval.run_table import write_run
from umarvel_cli.retrieval.search_stage import SearchGroup, exact_run_batches


def _gallery_rows(
    qid: str, q: np.ndarray, gallery: list[str], col: dict[str, int], x: np.ndarray
) -> pa.Table:
    scores = x[[col[d] for d in gallery]] @ q
    order = np.argsort(-scores, kind="stable")
    return pa.table(
        {
            "qid": [qid] * len(gallery),
            "did": [gallery[i] for i in order],
            "rank": pa.array(np.arange(1, len(gallery) + 1, dtype=np.int32)),
            "score": pa.array(scores[order].astype(np.float32)),
        },
        schema=TABLES["run"],
    )


def search_zeroshot_with_model(
    model: Path,
    data: Path,
    spec: BenchmarkSpec,
    split: str,
    by_task: dict[int, list[str]],
    galleries: dict[str, list[str]],
    out: Path,
    topk: int,
) -> dict[str, Any]:
    """Write OUT/run and return what was embedded and searched."""
    run_embed = load_run_embed()
    emb_root = out / "embeddings"
    run_embed(model, data, split, "queries", emb_root / "queries")
    q_ids, q_x = open_embeddings(emb_root / "queries").read()
    row_of = {q: i for i, q in enumerate(q_ids.to_pylist())}
    searched: list[dict[str, Any]] = []

    def batches() -> Iterator[pa.Table]:
        for task in spec.tasks:
            qids = by_task.get(task.dataset_id, [])
            if not qids:
                continue
            target = emb_root / f"pool-{task.name}"
            run_embed(model, data, split, "candidates", target, pool=task.name)
            c_set = open_embeddings(target)
            rows = np.fromiter((row_of[q] for q in qids), dtype=np.int64, count=len(qids))
            if task.protocol == "ranking":
                group = SearchGroup(task.name, pa.array(qids, type=pa.string()), q_x[rows], [c_set])
                yield from exact_run_batches([group], topk, searched)
                searched[-1]["protocol"] = task.protocol
            else:
                c_ids, c_x = c_set.read()
                col = {d: i for i, d in enumerate(c_ids.to_pylist())}
                for qid, r in zip(qids, rows, strict=True):
                    yield _gallery_rows(qid, q_x[r], galleries[qid], col, c_x)
                searched.append(
                    {
                        "group": task.name,
                        "protocol": task.protocol,
                        "queries": len(qids),
                        "candidates": len(col),
                    }
                )

    run_rows = write_run(out, batches())
    return {
        "embeddings": {p.name: str(p) for p in sorted(emb_root.iterdir()) if p.is_dir()},
        "searched": searched,
        "run_rows": run_rows,
    }
