"""`umarvel mine`: embed a split's queries and its union pool, search, filter, write the `mined` table.

Embeddings come from `run_embed` (reused when their manifest says they are up to date, e.g. from an
earlier mining run with other filters). Each unit of work is one task's queries (local pools) or one
block of queries (global pool), searched with the streaming exact search against the union pool's
shards: a torch matmul stream, on the rank's GPU (`cuda:LOCAL_RANK`) whenever torch sees one, else
on the CPU (faiss's flat GPU index would compute the same exact top-k, so mining does not need
faiss). The same single pass over the shards also scores every query's labelled positives (for the
positive-aware filters) and any random negatives. A unit writes one shard, so a killed run resumes
at the first unit without one. The report is built from the table at the end (`report.py`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, fingerprint, finish_stage, plan_stage
from umarvel_cli.artifacts.manifest import read_manifest, require_manifest
from umarvel_cli.artifacts.shards import list_shards, read_table, table_dir
from umarvel_cli.artifacts.stage import PROGRESS
from umarvel_cli.console import info
from umarvel_cli.data.mbeir.tasks import MBEIRSpec, load_mbeir_spec
from umarvel_cli.distributed import DistContext
from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining.pools import PoolIndex, pool_index
from umarvel_cli.mining.settings import MineSettings
from umarvel_cli.mining.unit import TABLE, Queries, Unit, load_queries, mine_unit, plan_units, task_spec
from umarvel_cli.models.folder import resolve_model_dir
from umarvel_cli.retrieval.embeddings import EmbeddingSet, open_embeddings
from umarvel_cli.retrieval.exact import pick_device

STAGE = "mine"
DATA_STAGE = "prepare-mbeir"
RANKS_DIR = "_ranks"


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

    model, data, out = resolve_model_dir(model), Path(data), Path(out)
    spec = load_mbeir_spec()
    union = check_inputs(model, data, settings.split)
    queries = load_queries(data, settings.split, spec)
    if settings.pool == "local" or settings.filters.same_modality:
        for stem in dict.fromkeys(queries.tasks):
            task_spec(spec, stem)  # a task outside the spec has no local pool or modality: refuse now
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
    index = pool_index(data, pool_set.ids())
    units = plan_units(queries, settings, index, spec, query_block)
    share = out if ctx.world_size == 1 else out / RANKS_DIR / f"rank-{ctx.rank:05d}"
    device = pick_device(device, ctx.local_rank)
    info(f"mine: exact search on {device}")
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
        "device": device,
        "summary": {k: v for k, v in summary.items() if k not in ("per_task", "short_examples")},
    }
    counts = {"queries": len(queries.qids), "rows": summary["queries"], "short": summary["short"]}
    manifest = finish_stage(plan, counts, extra)
    ctx.barrier()
    return manifest
