"""Read embedding shards (`DIR/embeddings/part-*.parquet`) as ids plus float32 blocks, shard by shard.

Vectors are L2-normalised on read (inner product = cosine, as UniIR does with `faiss.normalize_L2`);
an all-zero vector stays zero. Non-finite values are refused, since they would silently win top-k.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import Manifest, count_rows, read_manifest
from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.artifacts.shards import list_shards, open_shard
from umarvel_cli.errors import UmarvelError

TABLE = "embeddings"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (zero rows stay zero) and return x."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    np.maximum(norms, 1e-12, out=norms)
    x *= (1.0 / norms)[:, None]
    return x


def _finite_unit_rows(raw: np.ndarray, path: Path) -> np.ndarray:
    """A new float32 array of L2-normalised rows, made in one pass and one allocation.

    A NaN or infinite value makes its row's squared norm non-finite, which is how they are caught
    without a full-size boolean temporary.
    """
    x = raw if raw.dtype == np.float32 else raw.astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    if not np.isfinite(sq).all():
        raise UmarvelError("embedding holds NaN or infinite values", file=path, field="embedding")
    inv = 1.0 / np.maximum(np.sqrt(sq), 1e-12)
    if x is raw:
        return np.multiply(x, inv[:, None], dtype=np.float32)
    x *= inv[:, None]
    return x


def to_matrix(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """A fixed-size-list column as a (rows, dim) array, zero-copy where Arrow allows (read-only)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


@dataclass
class EmbeddingSet:
    """An `embed` output folder: where its shards are, their width and how many rows they hold."""

    root: Path
    dim: int
    dtype: str
    count: int
    manifest: Manifest | None

    def ids(self) -> pa.Array:
        """Every row's id in shard order, without reading a vector."""
        parts = [
            open_shard(p, TABLE).read(columns=["id"]).column("id").combine_chunks()
            for p in list_shards(self.root, TABLE)
        ]
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())

    def iter_blocks(
        self,
        rows: int = 65_536,
        normalize: bool = True,
        keep: Callable[[pa.Array], np.ndarray] | None = None,
    ) -> Iterator[tuple[pa.Array, np.ndarray]]:
        """Yield (ids, vectors) blocks of at most `rows` rows, in shard order.

        `keep(ids) -> bool mask` drops rows before they are converted (pool or modality filters).
        """
        for path in list_shards(self.root, TABLE):
            pf = open_shard(path, TABLE)
            for batch in pf.iter_batches(batch_size=rows, columns=["id", "embedding"]):
                ids = batch.column(0)
                vectors = batch.column(1)
                if keep is not None:
                    mask = pa.array(keep(ids), type=pa.bool_())
                    ids, vectors = pc.filter(ids, mask), pc.filter(vectors, mask)
                if len(ids) == 0:
                    continue
                raw = to_matrix(vectors, self.dim)
                if normalize:
                    yield ids, _finite_unit_rows(raw, path)
                    continue
                x = np.array(raw, dtype=np.float32)
                if not np.isfinite(np.einsum("ij,ij->i", x, x)).all():
                    raise UmarvelError("embedding holds NaN or infinite values", file=path, field="embedding")
                yield ids, x

    def read(
        self, normalize: bool = True, keep: Callable[[pa.Array], np.ndarray] | None = None
    ) -> tuple[pa.Array, np.ndarray]:
        """All (kept) rows at once: for query sets, which are small next to candidate pools."""
        ids, blocks = [], []
        for i, x in self.iter_blocks(normalize=normalize, keep=keep):
            ids.append(i)
            blocks.append(x)
        if not blocks:
            return pa.array([], type=pa.string()), np.zeros((0, self.dim), dtype=np.float32)
        return pa.concat_arrays(ids), np.concatenate(blocks)


def embeddings_root(path: str | Path) -> Path:
    """Accept the `embed` output folder or its `embeddings/` table folder."""
    p = Path(path)
    if (p / TABLE).is_dir():
        return p
    if p.name == TABLE and p.is_dir():
        return p.parent
    raise UmarvelError(
        "no embeddings table here",
        file=p,
        expected="the --out folder of `umarvel embed` (holding embeddings/)",
    )


def open_embeddings(path: str | Path, flag: str = "--embeddings") -> EmbeddingSet:
    """A finished `embed` output (manifest present, row count as counted) opened for reading."""
    root = embeddings_root(path)
    require_complete(root, ("embed",), flag)
    shards = list_shards(root, TABLE)
    if not shards:
        raise UmarvelError("embeddings table has no shards", file=root / TABLE)
    field = open_shard(shards[0], TABLE).schema_arrow.field("embedding")
    if not pa.types.is_fixed_size_list(field.type):
        raise UmarvelError("embedding column is not a fixed-size list", file=shards[0], field="embedding")
    dtype = "float16" if pa.types.is_float16(field.type.value_type) else "float32"
    return EmbeddingSet(
        root=root,
        dim=field.type.list_size,
        dtype=dtype,
        count=count_rows(root, TABLE),
        manifest=read_manifest(root),
    )


def ids_in(allowed: set[str] | pa.Array) -> Callable[[pa.Array], np.ndarray]:
    """A `keep` filter for EmbeddingSet.iter_blocks: rows whose id is in `allowed`."""
    value_set = allowed if isinstance(allowed, pa.Array) else pa.array(sorted(allowed), type=pa.string())

    def keep(ids: pa.Array) -> np.ndarray:
        return pc.is_in(ids, value_set=value_set).to_numpy(zero_copy_only=False)

    return keep
