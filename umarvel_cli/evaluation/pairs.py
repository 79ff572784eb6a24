"""A generic pairs benchmark: query embeddings, candidate embeddings and qrels, scored with hit@k
(CLIP-style "Recall@k"), true recall@k and CIRCO-style mAP@k. For zero-shot sets (composed-image
retrieval, text-to-video, ...) once their queries and gallery are embedded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.trec import read_qrels
from umarvel_cli.errors import UmarvelError
from umarvel_cli.metrics.aggregate import evaluate_queries
from umarvel_cli.retrieval.embeddings import open_embeddings
from umarvel_cli.retrieval.exact import exact_search


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Qrels from a TREC/M-BEIR qrels file or a folder holding a `qrels` table."""
    p = Path(path)
    out: dict[str, dict[str, int]] = {}
    if p.is_file():
        for row in read_qrels(p):
            out.setdefault(row.qid, {})[row.did] = row.relevance
        return out
    t = read_table(p, "qrels", columns=["qid", "did", "relevance"])
    for q, d, r in zip(*(t.column(c).to_pylist() for c in ("qid", "did", "relevance")), strict=True):
        out.setdefault(q, {})[d] = r
    return out


def evaluate_pairs(
    queries: str | Path,
    candidates: str | Path,
    qrels: str | Path,
    cutoffs: Sequence[int] = (1, 5, 10, 50),
    map_cutoffs: Sequence[int] = (5, 10, 25, 50),
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Exact search of every query over the whole gallery, then mean metrics over all queries.

    Every query of the query set counts (one without positives scores 0 and is reported)."""
    judged = load_qrels(qrels)
    q_set, c_set = open_embeddings(queries), open_embeddings(candidates)
    qids, qx = q_set.read()
    depth = max((*cutoffs, *map_cutoffs, 10))
    result = exact_search(qx, c_set.iter_blocks(), depth, query_block=batch_size)
    cand = result.candidate_ids.to_pylist()
    names = qids.to_pylist()
    unknown = sorted(set(judged) - set(names))
    if unknown:
        raise UmarvelError(
            f"{len(unknown)} qrels query id(s) have no query embedding (e.g. {unknown[0]!r})",
            file=qrels,
            field="qid",
        )
    rankings = {
        q: [cand[i] for i in row if i >= 0] for q, row in zip(names, result.indices.tolist(), strict=True)
    }
    outcomes = evaluate_queries(names, rankings, judged, cutoffs, map_cutoffs)
    metric_names = next(iter(outcomes.values())).metrics.keys() if outcomes else []
    means = {m: sum(o.metrics[m] for o in outcomes.values()) / len(outcomes) for m in metric_names}
    return {
        "n_queries": len(names),
        "n_candidates": len(cand),
        "n_without_qrels": sum(1 for o in outcomes.values() if not o.has_qrels),
        "metrics": means,
    }
