"""Exact inner-product top-k that streams candidate blocks and keeps a running top-k per query.

Memory is bounded by the queries, one candidate block, one (query block x candidate block) score
tile and the running (queries x k) lists; the full queries x candidates matrix never exists.
Runs with torch (matmul + topk) on CPU, or on a GPU when one is visible, without faiss.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from umarvel_cli.errors import UmarvelError
from umarvel_cli.retrieval.embeddings import EmbeddingSet
from umarvel_cli.retrieval.prefetch import prefetch


@dataclass
class SearchResult:
    """Top-k per query: `indices` point into `candidate_ids` (-1 = fewer than k candidates)."""

    scores: np.ndarray
    indices: np.ndarray
    candidate_ids: pa.Array

    @property
    def k(self) -> int:
        return self.indices.shape[1]


def pick_device(device: str | None = None, local_rank: int | None = None) -> str:
    """`device` as given, or for None/"auto" the GPU when torch sees one (under torchrun the rank's
    own, `cuda:LOCAL_RANK`), else the CPU."""
    import torch

    if device in (None, "auto"):
        if not torch.cuda.is_available():
            return "cpu"
        return "cuda" if local_rank is None else f"cuda:{local_rank}"
    return device


def chain_sets(
    sets: Iterable[EmbeddingSet], rows: int = 65_536, keep=None, dedupe: bool = False
) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """Blocks of several embedding sets one after the other (a union pool), optionally skipping
    ids already seen in an earlier block (so a candidate in two pools is searched once)."""
    seen: set[str] = set()
    for s in sets:
        for ids, x in s.iter_blocks(rows=rows, keep=keep):
            if dedupe:
                fresh = np.empty(len(ids), dtype=bool)
                for j, did in enumerate(ids.to_pylist()):
                    fresh[j] = did not in seen
                    seen.add(did)
                if not fresh.all():
                    ids, x = ids.filter(pa.array(fresh)), x[fresh]
            if len(ids):
                yield ids, x


def exact_search(
    queries: np.ndarray,
    blocks: Iterable[tuple[pa.Array, np.ndarray]],
    k: int,
    query_block: int = 4096,
    device: str | None = None,
    read_ahead: bool = True,
) -> SearchResult:
    """Top-k candidates of every query row by inner product, streaming `blocks` once."""
    import torch

    from umarvel_cli.retrieval.topk import merge_topk, tile_topk

    if k < 1:
        raise UmarvelError(f"top-k must be >= 1, not {k}", field="topk")
    if query_block < 1:
        raise UmarvelError(f"query block must be >= 1, not {query_block}", field="batch_size")
    dev = torch.device(pick_device(device))
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(dev)
    n_q, dim = q.shape
    run_vals = torch.empty((n_q, 0), dtype=torch.float32, device=dev)
    run_idx = torch.empty((n_q, 0), dtype=torch.int64, device=dev)
    id_parts: list[pa.Array] = []
    offset = 0
    tile: torch.Tensor | None = None
    for ids, x in prefetch(blocks, depth=1) if read_ahead else blocks:
        if x.shape[1] != dim:
            raise UmarvelError(
                f"candidate embeddings have dimension {x.shape[1]}, queries {dim}",
                field="embedding",
                expected="query and candidate embeddings from the same model",
            )
        c = torch.from_numpy(x).to(dev)
        new_vals, new_idx = [], []
        for start in range(0, n_q, query_block):
            q_tile = q[start : start + query_block]
            need = len(q_tile) * len(c)
            if tile is None or tile.numel() < need:
                tile = torch.empty(need, dtype=torch.float32, device=dev)
            scores = tile[:need].view(len(q_tile), len(c))
            torch.mm(q_tile, c.T, out=scores)  # one reused buffer: no fresh pages per tile
            v, i = tile_topk(scores, k, offset)
            new_vals.append(v)
            new_idx.append(i)
        if n_q:
            run_vals, run_idx = merge_topk(run_vals, run_idx, torch.cat(new_vals), torch.cat(new_idx), k)
        id_parts.append(ids)
        offset += len(ids)
    candidate_ids = pa.concat_arrays(id_parts) if id_parts else pa.array([], type=pa.string())
    return SearchResult(
        scores=run_vals.cpu().numpy(), indices=run_idx.cpu().numpy(), candidate_ids=candidate_ids
    )
