"""Embedding shards written by tests (the embedder is not needed to test retrieval)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from umarvel_cli.artifacts import Manifest, ShardWriter, embeddings_schema, write_manifest


def tie_heavy_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors with four entries of +-0.5: every dot product is an exact multiple of 0.25,
    so any summation order gives the same float32 score, and ties are frequent."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, dim), dtype=np.float32)
    for row in x:
        cols = rng.choice(dim, size=4, replace=False)
        row[cols] = rng.choice([-0.5, 0.5], size=4)
    return x


def write_embeddings(
    root: Path,
    ids: list[str],
    x: np.ndarray,
    rows_per_shard: int = 7,
    dtype: str = "float32",
    side: str = "candidates",
) -> Path:
    schema = embeddings_schema(x.shape[1], dtype)
    with ShardWriter(root, "embeddings", schema, rows_per_shard=rows_per_shard) as w:
        w.write_columns({"id": ids, "embedding": list(x.astype(dtype))})
    write_manifest(
        root,
        Manifest(
            stage="embed",
            params={},
            counts={"rows": len(ids)},
            extra={"dim": x.shape[1], "dtype": dtype, "side": side, "split": "test", "pool": None},
        ),
    )
    return root


def brute_force(q: np.ndarray, c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full score matrix, then (score desc, position asc) per row: the reference ranking."""
    s = q.astype(np.float64) @ c.astype(np.float64).T
    order = np.stack([np.lexsort((np.arange(len(row)), -row))[:k] for row in s])
    return np.take_along_axis(s, order, 1), order
