"""`umarvel mine`: embed a split's queries and its union pool, search, filter, write the `mined` table.

Embeddings come from `run_embed` (reused when their manifest says they are up to date, e.g. from an
earlier mining run with other filters). Each unit of work is one task's queries (local pools) or one
block of queries (global pool), searched with the streaming exact search against the union pool's
shards; the same single pass over the shards also scores every query's labelled positives (for the
positive-aware filters) and any random negatives. A unit writes one shard, so a killed run resumes
at the first unit without one. The report is built from the table at the end (`report.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, fingerprint, finish_stage, plan_stage
from umarvel_cli.artifacts.manifest import read_manifest, require_manifest
from umarvel_cli.artifacts.shards import list_shards, open_shard, read_table, table_dir
from umarvel_cli.artifacts.stage import PROGRESS
from umarvel_cli.console import info
from umarvel_cli.data.mbeir_tasks import MBEIRSpec, TaskSpec, load_mbeir_spec
from umarvel_cli.embedding.distributed import DistContext
from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining.filters import (
    FILTERS,
    SAMPLES,
    FilterSettings,
    filter_candidates,
    first_true,
    same_content,
    select_negatives,
)
from umarvel_cli.mining.pools import MODALITY_CODES, PoolIndex, pool_index
from umarvel_cli.retrieval.embeddings import EmbeddingSet, open_embeddings
from umarvel_cli.retrieval.exact import exact_search

STAGE = "mine"
TABLE = "mined"
DATA_STAGE = "prepare-mbeir"
POOLS = ("local", "global")
RANDOM_DRAWS = 100  # random candidates drawn per query before filtering (the released code's 100)
BLOCK_ROWS = 65_536
RANKS_DIR = "_ranks"


@dataclass(frozen=True)
class MineSettings:
    """Every option that changes the mined rows (the manifest's params)."""

    split: str = "train"
    pool: str = "local"
    topk: int = 100
    filters: FilterSettings = field(default_factory=FilterSettings)
    random_tasks: tuple[str, ...] = ()
    seed: int = 0

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["filters"]["rank_range"] = list(self.filters.rank_range)
        d["random_tasks"] = list(self.random_tasks)
        return d


def parse_range(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text or "")
    if m is None:
        raise UmarvelError(
            f"--range {text!r} is not a rank window", field="--range", expected="A-B, e.g. 1-100"
        )
    lo, hi = int(m.group(1)), int(m.group(2))
    if lo < 1:
        raise UmarvelError(f"--range {text!r} starts below rank 1", field="--range", expected="ranks from 1")
    if lo > hi:
        raise UmarvelError(f"--range {text!r} is inverted (empty)", field="--range", expected="A <= B")
    return lo, hi


def optional_number(text: str, option: str) -> float | None:
    """A filter threshold from the command line: a number, or `off` for no such filter."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise UmarvelError(
            f"{option} {text!r} is not a number", field=option, expected="a number or off"
        ) from None


def make_settings(
    *,
    split: str = "train",
    pool: str = "local",
    topk: int = 100,
    num_negatives: int = 5,
    rank_range: str = "1-100",
    margin: float | None = 0.0,
    max_score_ratio: float | None = 1.0,
    max_score: float | None = 1.0,
    same_modality: bool = False,
    sample: str = "top",
    random_tasks: str | list[str] | tuple[str, ...] = (),
    seed: int = 0,
    spec: MBEIRSpec | None = None,
) -> MineSettings:
    """Validate the options (nothing is written before this passes)."""
    spec = spec or load_mbeir_spec()
    if pool not in POOLS:
        raise UmarvelError(f"unknown --pool {pool!r}", field="--pool", expected=" | ".join(POOLS))
    if topk < 1:
        raise UmarvelError(f"--topk must be >= 1, not {topk}", field="--topk")
    lo, hi = parse_range(rank_range)
    if hi > topk:
        raise UmarvelError(
            f"--range {lo}-{hi} reaches past --topk {topk}", field="--range", expected=f"B <= {topk}"
        )
    if num_negatives < 1:
        raise UmarvelError(f"--num-negatives must be >= 1, not {num_negatives}", field="--num-negatives")
    if num_negatives > hi - lo + 1:
        raise UmarvelError(
            f"--num-negatives {num_negatives} is more than the window {lo}-{hi} can give ({hi - lo + 1})",
            field="--num-negatives",
            expected=f"at most {hi - lo + 1}",
        )
    if max_score_ratio is not None and not 0 < max_score_ratio <= 1:
        raise UmarvelError(
            f"--max-score-ratio {max_score_ratio} is outside (0, 1]",
            field="--max-score-ratio",
            expected="0 < r <= 1",
        )
    if sample not in SAMPLES:
        raise UmarvelError(f"unknown --sample {sample!r}", field="--sample", expected=" | ".join(SAMPLES))
    if isinstance(random_tasks, str):
        random_tasks = [t.strip() for t in random_tasks.split(",") if t.strip()]
    unknown = [t for t in random_tasks if t not in spec.order]
    if unknown:
        raise UmarvelError(
            f"--random-tasks: unknown task {unknown[0]!r}",
            field="--random-tasks",
            expected="task stems like mscoco_task0",
        )
    return MineSettings(
        split=split,
        pool=pool,
        topk=topk,
        filters=FilterSettings(
            num_negatives=num_negatives,
            rank_range=(lo, hi),
            margin=margin,
            max_score_ratio=max_score_ratio,
            max_score=max_score,
            same_modality=same_modality,
            sample=sample,
        ),
        random_tasks=tuple(dict.fromkeys(random_tasks)),
        seed=seed,
    )


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


def resolve_model(model: Path) -> Path:
    """A model folder, or a finished `umarvel train` output (its `model/`)."""
    manifest = read_manifest(model) if model.is_dir() else None
    if manifest is not None and manifest.stage.startswith("train-") and (model / "model").is_dir():
        return model / "model"
    return model


def check_inputs(model: Path, data: Path, split: str) -> str:
    """Refuse an unfinished or foreign --data, an unfinished model or one without a valid umarvel.json,
    a missing pool. Returns the union pool's name.
    """
    from umarvel_cli.models.umarvel_config import UmarvelConfig

    manifest = require_manifest(data)
    if (data / PROGRESS).is_file():
        raise UmarvelError("an interrupted stage left this folder", file=data, expected="finished tables")
    if manifest.stage != DATA_STAGE:
        raise UmarvelError(
            f"written by stage '{manifest.stage}'",
            file=data,
            expected="the tables of `umarvel prepare mbeir`",
        )
    if not Path(model).is_dir():
        raise UmarvelError("model folder does not exist", file=model, field="--model")
    for folder in (model, model.parent):
        if (folder / PROGRESS).is_file():
            raise UmarvelError(
                "the stage that writes this model was interrupted", file=folder, field="--model",
                expected="a finished model (run that stage again to finish it)",
            )  # fmt: skip
    UmarvelConfig.load(model)
    union = f"union_{split}"
    pools = read_table(data, "pools", columns=["pool"], filters=[("pool", "=", union)])
    if pools.num_rows == 0:
        raise UmarvelError(
            f"pool {union!r} does not exist", file=table_dir(data, "pools"), field="--split",
            expected="a split whose union pool the tables hold",
        )  # fmt: skip
    return union


# --------------------------------------------------------------------------------------------------
# One unit of work


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
                cut(stem, members, index.local_mask(_task(spec, stem)))
    else:
        cut("union", np.flatnonzero(~rand), None)
    cut("random", np.flatnonzero(rand), None, random=True)
    return units


def _task(spec: MBEIRSpec, stem: str) -> TaskSpec:
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
        [MODALITY_CODES.get(_task(spec, queries.tasks[m]).cand_modality, -1) if fs.same_modality else 0 for m in unit.members],
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


def write_units(
    out: Path,
    units: list[Unit],
    queries: Queries,
    q_x: np.ndarray,
    pool_set: EmbeddingSet,
    index: PoolIndex,
    settings: MineSettings,
    spec: MBEIRSpec,
    resume: bool = False,
    device: str | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> int:
    """Mine this rank's units (every world_size-th) into `out/mined/`, one shard per unit, skipping
    the units a killed run finished. A unit's seed is its global index, so shares do not matter."""
    mine = [(i, u) for i, u in enumerate(units) if i % world_size == rank]
    largest = max((len(u.members) for _, u in mine), default=1)
    with ShardWriter(out, TABLE, TABLES[TABLE], rows_per_shard=largest + 1, resume=resume) as w:
        done, skip = 0, w.rows_done
        for i, unit in mine:
            if done + len(unit.members) <= skip:
                done += len(unit.members)
                continue
            info(f"mine: {unit.label} ({len(unit.members):,} queries)")
            w.write_batch(mine_unit(unit, queries, q_x, pool_set, index, settings, spec, i, device))
            w.flush()
            done += len(unit.members)
    return w.rows_written


def merge_ranks(out: Path, n_units: int, world_size: int) -> None:
    """Unit i's shard is shard i // world_size of rank i % world_size: renumber them in unit order."""
    final = table_dir(out, TABLE)
    if final.exists():
        shutil.rmtree(final)
    final.mkdir(parents=True)
    shards = [list_shards(out / RANKS_DIR / f"rank-{r:05d}", TABLE) for r in range(world_size)]
    for i in range(n_units):
        os.replace(shards[i % world_size][i // world_size], final / f"part-{i:05d}.parquet")
    if n_units == 0:
        ShardWriter(out, TABLE, TABLES[TABLE]).close()
    shutil.rmtree(out / RANKS_DIR)


# --------------------------------------------------------------------------------------------------
# The stage


def _pool_ids(pool_set: EmbeddingSet) -> pa.Array:
    parts = [
        open_shard(p, "embeddings").read(columns=["id"]).column("id").combine_chunks()
        for p in list_shards(pool_set.root, "embeddings")
    ]
    return pa.concat_arrays(parts) if parts else pa.array([], pa.string())


def run_mine(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    settings: MineSettings,
    *,
    embeddings: str | Path | None = None,
    query_block: int = 32_768,
    force: bool = False,
    device: str | None = None,
    ctx: DistContext | None = None,
) -> Manifest:
    """Mine `settings.split` of `data` with `model` into `out` (module docstring).

    Under torchrun (`ctx`) every rank embeds its share (run_embed), mines every world_size-th unit
    into `out/_ranks/rank-R/` and rank 0 merges the shards in unit order, reports and finishes.
    """
    from umarvel_cli.embedding import run_embed
    from umarvel_cli.mining.near_duplicates import find_marks
    from umarvel_cli.mining.report import write_report

    model, data, out = resolve_model(Path(model)), Path(data), Path(out)
    spec = load_mbeir_spec()
    union = check_inputs(model, data, settings.split)
    queries = load_queries(data, settings.split, spec)
    if settings.pool == "local" or settings.filters.same_modality:
        for stem in dict.fromkeys(queries.tasks):
            _task(spec, stem)  # a task outside the spec has no local pool or modality: refuse now
    for t in settings.random_tasks:
        if t not in queries.tasks:
            info(f"[yellow]mine: --random-tasks {t} has no {settings.split} queries[/]")
    inputs = {"model": fingerprint(model), "data": fingerprint(data)}
    ctx = ctx or DistContext.from_env()
    # the query blocks fix the units, whose order seeds random sampling: part of the result
    params = {**settings.params(), "query_block": query_block}
    plan = plan_stage(out, STAGE, params, inputs, force) if ctx.is_main else None
    status = ctx.broadcast(plan.status if plan is not None else None)
    if status == "up_to_date":
        info(f"mine: {out} is up to date (same inputs and parameters); --force redoes it")
        manifest = read_manifest(out)
        assert manifest is not None
        return manifest
    if plan is not None:
        info(f"mine: {plan.status} ({plan.reason}) -> {out}")
    emb_root = Path(embeddings) if embeddings is not None else out / "embeddings"
    q_dir, c_dir = emb_root / f"queries-{settings.split}", emb_root / f"pool-{union}"
    run_embed(model, data, settings.split, "queries", q_dir, ctx=ctx)
    run_embed(model, data, settings.split, "candidates", c_dir, pool=union, ctx=ctx)
    q_set, pool_set = open_embeddings(q_dir), open_embeddings(c_dir)
    if q_set.dim != pool_set.dim:
        raise UmarvelError(f"query embeddings are {q_set.dim}-d, the pool's {pool_set.dim}-d", file=emb_root)
    q_ids, q_all = q_set.read()
    row_of = {q: i for i, q in enumerate(q_ids.to_pylist())}
    missing = [q for q in queries.qids if q not in row_of]
    if missing:
        raise UmarvelError(f"{len(missing)} queries have no embedding (e.g. {missing[0]!r})", file=q_dir)
    q_x = q_all[np.fromiter((row_of[q] for q in queries.qids), np.int64, len(queries.qids))]
    index = pool_index(data, _pool_ids(pool_set))
    units = plan_units(queries, settings, index, spec, query_block)
    share = out if ctx.world_size == 1 else out / RANKS_DIR / f"rank-{ctx.rank:05d}"
    write_units(
        share, units, queries, q_x, pool_set, index, settings, spec,
        resume=status == "resume", device=device, rank=ctx.rank, world_size=ctx.world_size,
    )  # fmt: skip
    ctx.barrier()
    if not ctx.is_main:
        ctx.barrier()
        manifest = read_manifest(out)
        assert manifest is not None
        return manifest
    assert plan is not None
    if ctx.world_size > 1:
        merge_ranks(out, len(units), ctx.world_size)
    marks = find_marks(data)
    summary = write_report(out, settings, marks)
    extra = {
        "model": str(model.resolve()),
        "data": str(data.resolve()),
        "embeddings": {"queries": str(q_dir.resolve()), "pool": str(c_dir.resolve())},
        "pool_name": union,
        "pool_size": len(index),
        "summary": {k: v for k, v in summary.items() if k not in ("per_task", "short_examples")},
    }
    counts = {"queries": len(queries.qids), "rows": summary["queries"], "short": summary["short"]}
    manifest = finish_stage(plan, counts, extra)
    ctx.barrier()
    return manifest
