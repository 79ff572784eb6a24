"""`embed`: encode the queries of a split or the candidates of a pool into embedding shards.

Items are cut into chunks of `shard_size` in table order; each chunk is formatted once (in a
background thread, while the previous chunk runs on the model), encoded in length/image-size
buckets, written in chunk order as ONE atomic shard, and recorded in a small state file. A killed
run resumes at the first unfinished chunk, so the output has every id exactly once and equals an
uninterrupted run. Under torchrun each rank encodes the ids that hash to it into its own folder
and rank 0 merges the shards.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.artifacts.manifest import Manifest, atomic_write_text, fingerprint, read_manifest
from umarvel_cli.artifacts.schemas import embeddings_schema
from umarvel_cli.artifacts.shards import ShardWriter, list_shards, table_dir
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.console import info, make_progress
from umarvel_cli.data.instructions import MODES
from umarvel_cli.data.records import Record, Role
from umarvel_cli.distributed import DistContext, rank_of
from umarvel_cli.embedding.sources import SIDES, load_records
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.folder import resolve_model_dir
from umarvel_cli.models.inputs.encoded import EncodedInput
from umarvel_cli.models.inputs.formatter import InputFormatter
from umarvel_cli.retrieval.exact import pick_device

STAGE = "embed"
TABLE = "embeddings"
STATE_FILE = "_embed_state.json"
RANKS_DIR = "_ranks"
ON_ERROR = ("fail", "skip")
DTYPES = ("float16", "float32")
DEFAULT_SHARD_SIZE = 2048


@dataclass
class ShareState:
    """Progress of one process's share: chunks and shards completed, items skipped."""

    chunks_done: int = 0
    shards_done: int = 0
    rows: int = 0
    skipped: list[list[str]] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> ShareState:
        path = root / STATE_FILE
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, root: Path) -> None:
        atomic_write_text(root / STATE_FILE, json.dumps(asdict(self)) + "\n")


def format_chunk(
    formatter: InputFormatter, records: list[Record], role: Role, on_error: str
) -> tuple[list[Record], list[EncodedInput], list[list[str]]]:
    """Format a chunk; with on_error=skip, bad items are dropped and reported as [id, reason].

    With on_error=fail only image headers are read here and the pixels are decoded per batch
    beside the model (a corrupt image body then fails there, with the same message); skipping
    needs every image decoded here, so a bad one is dropped before the chunk is embedded.
    """
    try:
        return (
            records,
            formatter.encode_many(records, role, defer_pixels=True, defer_decode=on_error == "fail"),
            [],
        )
    except UmarvelError:
        if on_error == "fail":
            raise
    kept, encoded, skipped = [], [], []
    for r in records:
        try:
            encoded.append(formatter.encode_many([r], role, defer_pixels=True)[0])
            kept.append(r)
        except UmarvelError as e:
            skipped.append([r.id, e.render()])
    return kept, encoded, skipped


def _embedding_batch(ids: list[str], vecs: np.ndarray, schema: pa.Schema, dtype: str) -> pa.RecordBatch:
    values = pa.array(vecs.astype(np.float16 if dtype == "float16" else np.float32).ravel())
    emb = pa.FixedSizeListArray.from_arrays(values, vecs.shape[1])
    return pa.RecordBatch.from_arrays([pa.array(ids, pa.string()), emb], schema=schema)


def encode_share(
    embedder: Any,
    records: list[Record],
    root: Path,
    role: Role,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_size: int = 32,
    dtype: str = "float32",
    on_error: str = "fail",
    resume: bool = False,
    description: str = "embed",
) -> ShareState:
    """Encode `records` into `root/embeddings/`, one shard per chunk, resuming from the state file."""
    root.mkdir(parents=True, exist_ok=True)
    state = ShareState.load(root) if resume else ShareState()
    # A shard written after the last state update belongs to an unfinished chunk: redo that chunk.
    for stale in list_shards(root, TABLE)[state.shards_done :]:
        stale.unlink()
    schema = embeddings_schema(embedder.dim, dtype)
    # floats barely compress (≈10%) and uncompressed shards read about 2x faster (docs/benchmarks.md)
    writer = ShardWriter(root, TABLE, schema, rows_per_shard=shard_size, resume=resume, compression="none")
    chunks = [records[i : i + shard_size] for i in range(0, len(records), shard_size)]
    todo = chunks[state.chunks_done :]
    with make_progress() as progress, ThreadPoolExecutor(max_workers=1) as pool:
        task = progress.add_task(description, total=len(records), rate="")
        progress.update(task, completed=sum(len(c) for c in chunks[: state.chunks_done]))

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:,.1f} items/s")

        pending: Future | None = (
            pool.submit(format_chunk, embedder.formatter, todo[0], role, on_error) if todo else None
        )
        for k in range(len(todo)):
            assert pending is not None
            kept, encoded, skipped = pending.result()
            pending = (
                pool.submit(format_chunk, embedder.formatter, todo[k + 1], role, on_error)
                if k + 1 < len(todo)
                else None
            )
            if skipped:
                advance(len(skipped))
            if encoded:
                vecs = embedder.encode_inputs(encoded, batch_size, on_batch=advance)
                writer.write_batch(_embedding_batch([r.id for r in kept], vecs, schema, dtype))
                writer.flush()
            state.chunks_done += 1
            state.shards_done = writer.next_shard
            state.rows += len(kept)
            state.skipped.extend(skipped)
            state.save(root)
    writer.close()
    return state


def _merge_ranks(out: Path, world_size: int) -> None:
    """Move every rank's shards into `out/embeddings/` (rank order), then drop the rank folders."""
    final = table_dir(out, TABLE)
    if final.exists():
        shutil.rmtree(final)
    final.mkdir(parents=True)
    k = 0
    for r in range(world_size):
        for shard in list_shards(out / RANKS_DIR / f"rank-{r:05d}", TABLE):
            os.replace(shard, final / f"part-{k:05d}.parquet")
            k += 1
    shutil.rmtree(out / RANKS_DIR)


def run_embed(
    model: Path,
    data: Path,
    split: str,
    side: str,
    out: Path,
    pool: str | None = None,
    batch_size: int = 32,
    dtype: str = "float32",
    instruction_mode: str = "first",
    force: bool = False,
    on_error: str = "fail",
    shard_size: int = DEFAULT_SHARD_SIZE,
    device: str | None = None,
    ctx: DistContext | None = None,
) -> Manifest:
    """Encode one side of a split into `out/embeddings/` + manifest; see the module docstring.

    `model`: a model folder or a train output that holds one (`models.folder`)."""
    from umarvel_cli.models.embedder import Embedder

    model, data, out = resolve_model_dir(model), Path(data), Path(out)
    if on_error not in ON_ERROR:
        raise UmarvelError(
            f"unknown --on-error {on_error!r}", field="--on-error", expected=" | ".join(ON_ERROR)
        )
    if dtype not in DTYPES:
        raise UmarvelError(f"unknown --dtype {dtype!r}", field="--dtype", expected=" | ".join(DTYPES))
    if side not in SIDES:
        raise UmarvelError(f"unknown side {side!r}", field="--side", expected=" | ".join(SIDES))
    if instruction_mode not in MODES:
        raise UmarvelError(
            f"unknown instruction mode {instruction_mode!r}",
            field="--instruction-mode",
            expected=" | ".join(MODES),
        )
    if shard_size < 1 or batch_size < 1:
        raise UmarvelError("--batch-size and shard size must be >= 1", field="--batch-size")
    ctx = ctx or DistContext.from_env()
    params: dict[str, Any] = {
        "side": side,
        "split": split if side == "queries" else None,
        "pool": pool if side == "candidates" else None,
        "dtype": dtype,
        "instruction_mode": instruction_mode if side == "queries" else None,
        "on_error": on_error,
        "shard_size": shard_size,
    }
    if ctx.world_size > 1:
        params["world_size"] = ctx.world_size
    require_complete(data, None, "--data")
    inputs = {"model": fingerprint(model), "data": fingerprint(data)}

    plan = plan_stage(out, STAGE, params, inputs, force, input_paths=[model, data]) if ctx.is_main else None
    status = ctx.broadcast(plan.status if plan is not None else None)
    if status == "up_to_date":
        if ctx.is_main:
            info(f"embed: {out} is up to date")
        manifest = read_manifest(out)
        assert manifest is not None
        return manifest

    records = load_records(data, split, side, pool, instruction_mode)
    if ctx.world_size > 1:
        records = [r for r in records if rank_of(r.id, ctx.world_size) == ctx.rank]
        root = out / RANKS_DIR / f"rank-{ctx.rank:05d}"
    else:
        root = out
    role: Role = "query" if side == "queries" else "candidate"
    embedder = Embedder.from_pretrained(model, device=pick_device(device, ctx.local_rank))
    encode_share(
        embedder,
        records,
        root,
        role,
        shard_size=shard_size,
        batch_size=batch_size,
        dtype=dtype,
        on_error=on_error,
        resume=status == "resume",
        description=f"embed {side} ({split if side == 'queries' else pool or 'all candidates'})"
        + (f" (rank {ctx.rank})" if ctx.world_size > 1 else ""),
    )
    ctx.barrier()
    if ctx.is_main:
        assert plan is not None
        roots = (
            [out / RANKS_DIR / f"rank-{r:05d}" for r in range(ctx.world_size)]
            if ctx.world_size > 1
            else [out]
        )
        states = [ShareState.load(r) for r in roots]
        skipped = [s for st in states for s in st.skipped]
        if ctx.world_size > 1:
            _merge_ranks(out, ctx.world_size)
        else:
            (out / STATE_FILE).unlink(missing_ok=True)
        extra = {
            "dim": embedder.dim,
            "dtype": dtype,
            "side": side,
            "split": split if side == "queries" else None,
            "pool": pool,
            "model": str(model.resolve()),
            "skipped": skipped[:100],
        }
        manifest = finish_stage(
            plan, {"embedded": sum(s.rows for s in states), "skipped": len(skipped)}, extra
        )
    ctx.barrier()
    if not ctx.is_main:
        manifest = read_manifest(out)  # type: ignore[assignment]
        assert manifest is not None
    return manifest
