"""The `run` table (qid, did, rank, score): SearchResults become its rows, and the one writer of it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts import TABLES, ShardWriter
from umarvel_cli.retrieval.exact import SearchResult

RUN_TABLE = "run"


def iter_run_batches(
    qids: pa.Array, result: SearchResult, queries_per_batch: int = 8192
) -> Iterator[pa.Table]:
    """Rows best first per query, ranks from 1; empty slots (fewer than k candidates) are left out."""
    k = result.k
    for start in range(0, len(qids), queries_per_batch):
        idx = result.indices[start : start + queries_per_batch]
        n = len(idx)
        valid = (idx >= 0).ravel()
        q_pos = np.repeat(np.arange(start, start + n), k)[valid]
        ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), n)[valid]
        yield pa.table(
            {
                "qid": qids.take(pa.array(q_pos)),
                "did": result.candidate_ids.take(pa.array(idx.ravel()[valid])),
                "rank": pa.array(ranks, type=pa.int32()),
                "score": pa.array(result.scores[start : start + n].ravel()[valid], type=pa.float32()),
            },
            schema=TABLES["run"],
        )


def write_run(out: str | Path, batches: Iterable[pa.Table | pa.RecordBatch]) -> int:
    """Write `out/run/` from run-table batches (replacing an older run there); the rows written."""
    with ShardWriter(out, RUN_TABLE, TABLES["run"], rows_per_shard=2_000_000) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return writer.rows_written
