"""faiss index over candidate embeddings: build (any `index_factory` string), load, search.

Vectors are L2-normalised and compared by inner product. Index positions follow the order of the
embedding shards; the `ids` table beside the index maps a position to its candidate id. On a box
whose faiss has GPU support the index is sharded over all visible GPUs, otherwise it stays on CPU;
the manifest says which. faiss is imported only here, and only when an index is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts import Manifest, ShardWriter, fingerprint, finish_stage, plan_stage
from umarvel_cli.artifacts.atomic import create_temp_file, replace_into
from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.artifacts.manifest import require_manifest
from umarvel_cli.artifacts.schemas import TABLES
from umarvel_cli.artifacts.shards import read_table
from umarvel_cli.console import info, track
from umarvel_cli.errors import UmarvelError
from umarvel_cli.retrieval.embeddings import open_embeddings
from umarvel_cli.retrieval.exact import SearchResult

INDEX_FILE = "index.faiss"
IDS_TABLE = "ids"
IDS_SCHEMA = TABLES[IDS_TABLE]
STAGE = "index"


def require_faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise UmarvelError(
            "faiss is not installed, and an index needs it",
            expected="`pip install faiss-cpu` (or faiss-gpu-cu12 on a GPU box); "
            "exact search with --candidates works without faiss",
        ) from e
    return faiss


def gpu_count(faiss: Any) -> int:
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def _use_gpu(faiss: Any, gpu: bool | None) -> bool:
    n = gpu_count(faiss)
    if gpu and n == 0:
        raise UmarvelError(
            "--device cuda asked for, but this faiss has no GPU support or sees no GPU",
            field="--device",
            expected="faiss-gpu with a visible GPU, or --no-gpu",
        )
    return n > 0 if gpu is None else gpu


def _to_gpus(faiss: Any, index: Any) -> tuple[Any, str]:
    """Shard an index over all visible GPUs; index types without GPU support stay on CPU."""
    co = faiss.GpuMultipleClonerOptions()
    co.shard = True
    try:
        return faiss.index_cpu_to_all_gpus(index, co=co), f"gpu x{gpu_count(faiss)} (sharded)"
    except (RuntimeError, AttributeError) as e:
        info(f"[yellow]this index type has no GPU version ({e}); using CPU[/]")
        return index, "cpu"


def is_exact(factory: str) -> bool:
    return factory.replace(" ", "") in ("Flat", "IDMap,Flat")


def build_index(
    embeddings: str | Path,
    out: str | Path,
    factory: str = "Flat",
    gpu: bool | None = None,
    train_size: int = 262_144,
    block_rows: int = 65_536,
    force: bool = False,
) -> Manifest:
    """Build a faiss index over an embedding set, writing `index.faiss`, `ids/` and the manifest."""
    faiss = require_faiss()
    emb = open_embeddings(embeddings, "--candidates")
    params = {"factory": factory, "train_size": train_size, "gpu": gpu}
    plan = plan_stage(
        out, STAGE, params, {"embeddings": fingerprint(emb.root)}, force, input_paths=[emb.root]
    )
    if plan.up_to_date:
        info(f"index: {out} is up to date")
        return require_manifest(out, STAGE)
    try:
        index = faiss.index_factory(emb.dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise UmarvelError(
            f"faiss cannot build {factory!r}: {str(e).splitlines()[0][:200]}",
            field="--factory",
            expected="a faiss index_factory string such as Flat, IVF4096,Flat or HNSW32",
        ) from e
    device = "cpu"
    if _use_gpu(faiss, gpu):
        index, device = _to_gpus(faiss, index)
    trained_on = 0
    if not index.is_trained:
        sample = _training_sample(emb, min(train_size, emb.count), block_rows)
        trained_on = len(sample)
        info(f"index: training {factory} on {trained_on:,} sampled vectors")
        try:
            index.train(sample)
        except RuntimeError as e:
            raise UmarvelError(
                f"faiss could not train {factory!r} on {trained_on:,} vectors: {str(e).splitlines()[0][:200]}",
                field="--factory",
                expected="a smaller index (fewer IVF lists) for this pool size",
            ) from e
    with ShardWriter(plan.out, IDS_TABLE, IDS_SCHEMA, rows_per_shard=1_000_000) as ids_out:
        blocks = emb.iter_blocks(rows=block_rows)
        for ids, x in track(blocks, total=-(-emb.count // block_rows), description="index", unit="blocks"):
            index.add(x)
            ids_out.write_columns({"id": ids})
    if device != "cpu":
        index = faiss.index_gpu_to_cpu(index)
    tmp, fd = create_temp_file(plan.out / INDEX_FILE)
    os.close(fd)
    faiss.write_index(index, str(tmp))
    replace_into(tmp, plan.out / INDEX_FILE)
    extra = {
        "factory": factory,
        "dim": emb.dim,
        "metric": "inner_product",
        "normalized": True,
        "exact": is_exact(factory),
        "device": device,
        "trained_on": trained_on,
        "faiss_version": getattr(faiss, "__version__", "unknown"),
    }
    return finish_stage(plan, {"vectors": int(index.ntotal)}, extra)


def _training_sample(emb, size: int, block_rows: int) -> np.ndarray:
    """A uniform random sample (seed 0) of `size` rows, read in one streaming pass."""
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(emb.count, size=size, replace=False))
    parts, start = [], 0
    for _ids, x in emb.iter_blocks(rows=block_rows):
        lo, hi = np.searchsorted(chosen, [start, start + len(x)])
        if hi > lo:
            parts.append(x[chosen[lo:hi] - start])
        start += len(x)
    return np.concatenate(parts) if parts else np.zeros((0, emb.dim), dtype=np.float32)


@dataclass
class LoadedIndex:
    index: Any
    ids: pa.Array
    exact: bool
    device: str
    manifest: Manifest


def load_index(path: str | Path, gpu: bool | None = None) -> LoadedIndex:
    faiss = require_faiss()
    manifest = require_complete(path, (STAGE,), "--index")
    index = faiss.read_index(str(Path(path) / INDEX_FILE))
    ids = read_table(path, IDS_TABLE, columns=["id"]).column("id").combine_chunks()
    if len(ids) != index.ntotal:
        raise UmarvelError(
            f"ids table has {len(ids)} rows but the index {index.ntotal} vectors",
            file=path,
            expected="a rebuild",
        )
    device = "cpu"
    if _use_gpu(faiss, gpu):
        index, device = _to_gpus(faiss, index)
    return LoadedIndex(index, ids, bool(manifest.extra.get("exact")), device, manifest)


def search_index(loaded: LoadedIndex, queries: np.ndarray, k: int, query_block: int = 16_384) -> SearchResult:
    """Top-k through the index. For an exact index the tie rule of `topk` holds too: rows tied at
    the cut are searched again with a larger k, then every row is ordered by (score, position)."""
    import torch

    from umarvel_cli.retrieval.topk import order_rows

    if k < 1:
        raise UmarvelError(f"top-k must be >= 1, not {k}", field="topk")
    index = loaded.index
    k_eff = min(k, index.ntotal)
    out_v = np.full((len(queries), k_eff), -np.inf, dtype=np.float32)
    out_i = np.full((len(queries), k_eff), -1, dtype=np.int64)
    if k_eff == 0:
        return SearchResult(out_v, out_i, loaded.ids)
    for start in range(0, len(queries), query_block):
        q = np.ascontiguousarray(queries[start : start + query_block], dtype=np.float32)
        probe = min(k_eff + 1, index.ntotal)
        v, i = index.search(q, probe)
        if loaded.exact and probe > k_eff:
            for row in np.nonzero(v[:, k_eff - 1] == v[:, k_eff])[0]:
                v_row, i_row = _widen(index, q[row : row + 1], k_eff, probe)
                v[row, :k_eff], i[row, :k_eff] = v_row, i_row
        vt, it = torch.from_numpy(v[:, :k_eff].copy()), torch.from_numpy(i[:, :k_eff].copy())
        missing = it < 0
        vt[missing] = -torch.inf
        it[missing] = torch.iinfo(torch.int64).max
        vt, it = order_rows(vt, it)
        it[it == torch.iinfo(torch.int64).max] = -1
        out_v[start : start + len(q)] = vt.numpy()
        out_i[start : start + len(q)] = it.numpy()
    return SearchResult(out_v, out_i, loaded.ids)


def _widen(index: Any, q: np.ndarray, k: int, probe: int) -> tuple[np.ndarray, np.ndarray]:
    """Search one query with a growing k until the tie at the cut is complete; keep the lowest
    positions among the tied scores."""
    while True:
        probe = min(probe * 2, index.ntotal)
        v, i = index.search(q, probe)
        v, i = v[0], i[0]
        if probe == index.ntotal or v[-1] < v[k - 1]:
            break
    order = np.lexsort((i, -v))
    return v[order][:k], i[order][:k]
