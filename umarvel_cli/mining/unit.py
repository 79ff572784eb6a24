"""One unit of mining work: a block of queries searched (or drawn for) together, filtered and written.

The pool streams past once per unit: exact search on the rows the unit may see (its task's rebuilt
local pool, or all), while the same pass scores every query's labelled positives (for the
positive-aware filters) and any random negatives on the full blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import TABLES, read_table
from umarvel_cli.artifacts.shards import table_dir
from umarvel_cli.data.mbeir.tasks import MBEIRSpec, TaskSpec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining.filters import (
    FILTERS,
    FilterSettings,
    filter_candidates,
    first_true,
    same_content,
    select_negatives,
)
from umarvel_cli.mining.pools import MODALITY_CODES, PoolIndex
from umarvel_cli.mining.settings import MineSettings
from umarvel_cli.retrieval.embeddings import EmbeddingSet
from umarvel_cli.retrieval.exact import exact_search

TABLE = "mined"
RANDOM_DRAWS = 100  # random candidates drawn per query before filtering (the released code's 100)
BLOCK_ROWS = 65_536


@dataclass
class Queries:
    """The split's queries in table order: ids, task stems and labelled positives."""

    qids: list[str]
    tasks: list[str]
    pos: list[list[str]]


def load_queries(data: Path, split: str, spec: MBEIRSpec) -> Queries:
    t = read_table(data, "queries", columns=["qid", "split", "task_id", "dataset_id", "pos"])
    t = t.filter(pc.equal(t.column("split"), split))
    if t.num_rows == 0:
        raise UmarvelError(
            f"no {split} queries in the tables", file=table_dir(data, "queries"), field="--split"
        )
    names = spec.datasets
    tasks = [
        f"{names.get(d, f'dataset{d}')}_task{k}"
        for d, k in zip(t.column("dataset_id").to_pylist(), t.column("task_id").to_pylist(), strict=True)
    ]
    qids = t.column("qid").to_pylist()
    if len(set(qids)) != len(qids):
        raise UmarvelError(f"duplicate {split} query ids", file=table_dir(data, "queries"), field="qid")
    return Queries(qids, tasks, t.column("pos").to_pylist())


@dataclass
class Unit:
    """Queries mined together: `members` index into Queries; `keep` masks the pool (None = all);
    `random` units draw negatives at random instead of searching."""

    label: str
    members: np.ndarray
    keep: np.ndarray | None
    random: bool = False


def plan_units(
    queries: Queries, settings: MineSettings, index: PoolIndex, spec: MBEIRSpec, block: int
) -> list[Unit]:
    """Deterministic units (their order fixes the shard order, so resume is exact)."""
    tasks = np.array(queries.tasks, dtype=object)
    rand = np.isin(tasks, list(settings.random_tasks))
    units: list[Unit] = []

    def cut(label: str, members: np.ndarray, keep: np.ndarray | None, random: bool = False) -> None:
        for start in range(0, len(members), block):
            units.append(Unit(label, members[start : start + block], keep, random))

    if settings.pool == "local":
        for stem in dict.fromkeys(queries.tasks):
            members = np.flatnonzero((tasks == stem) & ~rand)
            if len(members):
                cut(stem, members, index.local_mask(task_spec(spec, stem)))
    else:
        cut("union", np.flatnonzero(~rand), None)
    cut("random", np.flatnonzero(rand), None, random=True)
    return units


def task_spec(spec: MBEIRSpec, stem: str) -> TaskSpec:
    try:
        return spec.task(stem)
    except KeyError:
        raise UmarvelError(
            f"task {stem!r} is not an M-BEIR task, so its local pool cannot be rebuilt",
            expected="--pool global for data outside the 16 M-BEIR tasks",
        ) from None


class PairScorer:
    """Scores chosen (query, pool row) pairs while the pool streams past: q . x for every pair."""

    def __init__(self, q: np.ndarray, query_of: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(rows, kind="stable")
        self.q, self.query_of, self.rows, self.order = q, query_of[order], rows[order], order
        self.scores = np.full(len(rows), np.nan, dtype=np.float32)

    def see(self, offset: int, x: np.ndarray) -> None:
        lo, hi = np.searchsorted(self.rows, [offset, offset + len(x)])
        if hi > lo:
            s = np.einsum("ij,ij->i", self.q[self.query_of[lo:hi]], x[self.rows[lo:hi] - offset])
            self.scores[self.order[lo:hi]] = s


def _stream(
    pool_set: EmbeddingSet, keep: np.ndarray | None, scorers: list[PairScorer], rows_out: list
) -> Iterator:
    """The pool's blocks (only `keep` rows), scoring pairs on the full blocks on the way."""
    offset = 0
    for ids, x in pool_set.iter_blocks(rows=BLOCK_ROWS):
        for s in scorers:
            s.see(offset, x)
        if keep is None:
            rows_out.append(np.arange(offset, offset + len(x)))
            yield ids, x
        else:
            m = keep[offset : offset + len(x)]
            if m.any():
                rows_out.append(offset + np.flatnonzero(m))
                yield ids.filter(pa.array(m)), x[m]
        offset += len(x)


def repeated(rows: np.ndarray) -> np.ndarray:
    """(n, m) mask of entries equal to an earlier entry of the same row (a row drawn twice)."""
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, axis=1)
    dup = np.zeros(rows.shape, dtype=bool)
    np.put_along_axis(dup, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1)
    return dup


def _padded(lists: list[np.ndarray], fill: int) -> np.ndarray:
    width = max((len(x) for x in lists), default=0)
    out = np.full((len(lists), width), fill, dtype=np.int64)
    for i, x in enumerate(lists):
        out[i, : len(x)] = x
    return out


def _list_array(values: np.ndarray, chosen: np.ndarray, typ: pa.DataType) -> pa.ListArray:
    """Row i = values[i, chosen[i]] for the chosen positions >= 0 (already in order)."""
    ok = chosen >= 0
    offsets = np.concatenate([[0], np.cumsum(ok.sum(axis=1))]).astype(np.int32)
    flat = np.take_along_axis(values, np.where(ok, chosen, 0), axis=1)[ok]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=typ))


def mine_unit(
    unit: Unit,
    queries: Queries,
    q_x: np.ndarray,
    pool_set: EmbeddingSet,
    index: PoolIndex,
    settings: MineSettings,
    spec: MBEIRSpec,
    seed_index: int,
    device: str | None = None,
) -> pa.RecordBatch:
    """Search (or draw), filter and select for one unit; returns its `mined` rows."""
    n = len(unit.members)
    fs = settings.filters
    k = fs.num_negatives
    rng = np.random.default_rng([settings.seed, seed_index])
    qv = q_x[unit.members]
    lists = [queries.pos[m] or [] for m in unit.members]
    flat = index.rows_of([d for p in lists for d in p])  # one hash lookup for the whole unit
    ends = np.cumsum([len(p) for p in lists])[:-1]
    pos_rows = _padded([r[r >= 0] for r in np.split(flat, ends)], -1)
    has_pos = pos_rows >= 0
    qi, pj = np.nonzero(has_pos)
    pos_scorer = PairScorer(qv, qi, pos_rows[qi, pj])
    scorers = [pos_scorer]
    if unit.random:
        draws = index.canonical[rng.integers(0, len(index), size=(n, max(RANDOM_DRAWS, 4 * k)))]
        rand_scorer = PairScorer(qv, np.repeat(np.arange(n), draws.shape[1]), draws.ravel())
        scorers.append(rand_scorer)
    rows_seen: list[np.ndarray] = []
    blocks = _stream(pool_set, unit.keep, scorers, rows_seen)
    if unit.random:
        for _ in blocks:
            pass
        crow = draws
        scores = rand_scorer.scores.reshape(n, -1)
        ranks = np.zeros_like(crow)
        valid = ~repeated(crow)
        active = FilterSettings(
            num_negatives=k, rank_range=(0, 0), margin=None, max_score_ratio=None, max_score=None,
            same_modality=fs.same_modality, sample=fs.sample,
        )  # fmt: skip
        searched = 0
    else:
        result = exact_search(qv, blocks, settings.topk, device=device)
        seen = np.concatenate(rows_seen) if rows_seen else np.zeros(0, np.int64)
        valid = result.indices >= 0
        crow = np.where(valid, seen[np.where(valid, result.indices, 0)] if len(seen) else 0, -1)
        scores = np.where(valid, result.scores, -np.inf).astype(np.float32)
        ranks = np.broadcast_to(np.arange(1, crow.shape[1] + 1), crow.shape)
        active = fs
        searched = len(seen)
    pos_score_m = np.full(has_pos.shape, -np.inf, dtype=np.float32)
    pos_score_m[qi, pj] = pos_scorer.scores
    pos_score = pos_score_m.max(axis=1, initial=-np.inf)
    pos_score = np.where(np.isfinite(pos_score), pos_score, np.nan).astype(np.float32)

    safe = np.where(crow >= 0, crow, 0)
    is_pos = (crow[:, :, None] == np.where(has_pos, pos_rows, -2)[:, None, :]).any(axis=2) & valid
    psafe = np.where(has_pos, pos_rows, 0)

    def codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.where(valid, key[safe], -1), np.where(has_pos, key[psafe], -2)

    same = same_content(*codes(index.src_key)) | same_content(*codes(index.content_key))
    wanted = np.array(
        [MODALITY_CODES.get(task_spec(spec, queries.tasks[m]).cand_modality, -1) if fs.same_modality else 0 for m in unit.members],
        dtype=np.int8,
    )  # fmt: skip
    modality_ok = index.modality[safe] == wanted[:, None]
    filtered = filter_candidates(scores, valid, is_pos, same, modality_ok, pos_score, active, ranks=ranks)
    chosen = select_negatives(filtered.keep, k, fs.sample, rng)
    plain = select_negatives(valid & ~is_pos, k, "top")
    first = first_true(is_pos) if not unit.random else np.zeros(n, np.int64)

    ids = index.ids
    neg_rows = _list_array(crow, chosen, pa.int64())
    top_rows = _list_array(crow, plain, pa.int64())
    columns: dict[str, Any] = {
        "qid": pa.array([queries.qids[m] for m in unit.members], pa.string()),
        "task": pa.array([queries.tasks[m] for m in unit.members], pa.string()),
        "source": pa.array(["random" if unit.random else "topk"] * n, pa.string()),
        "pos_ids": pa.array([queries.pos[m] or [] for m in unit.members], pa.list_(pa.string())),
        "pos_score": pa.array(pos_score, pa.float32(), mask=np.isnan(pos_score)),
        "first_pos_rank": pa.array(first.astype(np.int32), pa.int32(), mask=first == 0),
        "candidates": pa.array(np.full(n, searched if not unit.random else crow.shape[1], np.int32)),
        "neg_ids": pa.ListArray.from_arrays(neg_rows.offsets, ids.take(neg_rows.values)),
        "neg_scores": _list_array(scores, chosen, pa.float32()),
        "neg_ranks": _list_array(np.asarray(ranks, np.int64), chosen, pa.int32()),
        "top_neg_ids": pa.ListArray.from_arrays(top_rows.offsets, ids.take(top_rows.values)),
    }
    for name in FILTERS:
        columns[f"drop_{name}"] = pa.array(filtered.drops[name], pa.int32())
    return pa.RecordBatch.from_pydict(columns, schema=TABLES[TABLE])
