"""What each mined query searches: the rebuilt local train pool of its task, or the whole union pool.

The released code never used M-BEIR's own local train pools: it rebuilt one per task from the union
train pool (spec 9.2, `get_training_data_local_format.ipynb`): every candidate of the task's
dataset(s) whose modality is the task's candidate modality. OVEN and InfoSeek share their pools
(dataset ids 5 and 6). The rows here are positions in the union pool's embedding order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import read_table
from umarvel_cli.data.mbeir_tasks import TaskSpec

# Datasets whose local train pools are built from each other's candidates too (spec 9.2).
SHARED_POOL_DATASETS: dict[int, tuple[int, ...]] = {5: (5, 6), 6: (5, 6)}
MODALITY_CODES = {"text": 0, "image": 1, "image,text": 2}


def pool_datasets(task: TaskSpec) -> tuple[int, ...]:
    return SHARED_POOL_DATASETS.get(task.dataset_id, (task.dataset_id,))


def dataset_ids(ids: pa.Array) -> np.ndarray:
    """The dataset id of M-BEIR ids "{dataset_id}:{n}" (-1 for an id of another shape)."""
    heads = pc.list_element(pc.split_pattern(ids, ":", max_splits=1), 0)
    ok = pc.match_substring_regex(heads, r"^\d+$")
    safe = pc.if_else(ok, heads, pa.scalar("-1"))
    return pc.cast(safe, pa.int64()).to_numpy(zero_copy_only=False)


@dataclass
class PoolIndex:
    """The union pool in embedding order, with what the filters need per candidate.

    `src_key`/`content_key`: integer codes of `src_content` and of (text, image); -1 where absent.
    """

    ids: pa.Array
    dataset: np.ndarray
    modality: np.ndarray
    src_key: np.ndarray
    content_key: np.ndarray

    def rows_of(self, ids: pa.Array | list[str]) -> np.ndarray:
        """Positions of `ids` in the pool (-1 for ids not in it)."""
        arr = ids if isinstance(ids, pa.Array | pa.ChunkedArray) else pa.array(ids, type=pa.string())
        return pc.fill_null(pc.index_in(arr, value_set=self.ids), -1).to_numpy(zero_copy_only=False)

    def local_mask(self, task: TaskSpec) -> np.ndarray:
        """Membership of the task's rebuilt local train pool (spec 9.2)."""
        wanted = MODALITY_CODES.get(task.cand_modality, -1)
        return np.isin(self.dataset, pool_datasets(task)) & (self.modality == wanted)

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def canonical(self) -> np.ndarray:
        """Pool rows in id order: random draws index this, so they do not depend on how the shards
        happen to be ordered (under torchrun, rank by rank)."""
        return pc.sort_indices(self.ids).to_numpy(zero_copy_only=False).astype(np.int64)


def _codes(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def pool_index(data: Path, pool_ids: pa.Array) -> PoolIndex:
    """Per-candidate facts of `pool_ids` (the union pool's ids, in embedding order)."""
    cands = read_table(data, "candidates", columns=["did", "modality", "text", "image", "src_content"])
    rows = pc.index_in(pool_ids, value_set=cands.column("did").combine_chunks())
    cands = cands.take(pc.fill_null(rows, 0))
    missing = pc.is_null(rows)
    text = pc.fill_null(cands.column("text"), "")
    image = pc.fill_null(cands.column("image"), "")
    both = pc.binary_join_element_wise(text, image, "\x00")
    has_content = pc.or_(pc.is_valid(cands.column("text")), pc.is_valid(cands.column("image")))
    content = pc.if_else(pc.and_(has_content, pc.invert(missing)), both, pa.scalar(None, pa.string()))
    src = pc.if_else(missing, pa.scalar(None, pa.string()), cands.column("src_content"))
    names = pa.array(list(MODALITY_CODES), type=pa.string())
    modality = pc.fill_null(pc.index_in(cands.column("modality"), value_set=names), -1)
    modality = modality.to_numpy(zero_copy_only=False).astype(np.int8)
    modality[missing.to_numpy(zero_copy_only=False)] = -1
    return PoolIndex(
        ids=pool_ids,
        dataset=dataset_ids(pool_ids),
        modality=modality,
        src_key=_codes(src),
        content_key=_codes(content),
    )
