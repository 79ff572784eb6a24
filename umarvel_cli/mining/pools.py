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

from umarvel_cli.artifacts import iter_batches
from umarvel_cli.data.mbeir.tasks import TaskSpec

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


_KEY_MASK = (1 << 63) - 1
CANDIDATE_BATCH = 262_144


def _keys(values: pa.Array) -> np.ndarray:
    """A non-negative int64 per string (-1 for null). Python's string hash: stable within one
    process, which is all the keys need (they are compared only inside one mining run)."""
    return np.fromiter(
        (-1 if v is None else hash(v) & _KEY_MASK for v in values.to_pylist()),
        dtype=np.int64,
        count=len(values),
    )


def pool_index(data: Path, pool_ids: pa.Array) -> PoolIndex:
    """Per-candidate facts of `pool_ids` (the union pool's ids, in embedding order).

    The candidates table is streamed in batches and only hashed keys are kept, so memory is the
    pool's few arrays, not every candidate text (M-BEIR's table holds 5.6M of them).
    """
    n = len(pool_ids)
    modality = np.full(n, -1, dtype=np.int8)
    src_key = np.full(n, -1, dtype=np.int64)
    content_key = np.full(n, -1, dtype=np.int64)
    names = pa.array(list(MODALITY_CODES), type=pa.string())
    columns = ["did", "modality", "text", "image", "src_content"]
    for batch in iter_batches(data, "candidates", columns=columns, batch_size=CANDIDATE_BATCH):
        rows = pc.index_in(batch.column(0), value_set=pool_ids)
        hit = pc.is_valid(rows)
        if not pc.any(hit).as_py():
            continue
        sub = batch.filter(hit)
        at = rows.filter(hit).to_numpy(zero_copy_only=False)
        mods = pc.fill_null(pc.index_in(sub.column(1), value_set=names), -1)
        modality[at] = mods.to_numpy(zero_copy_only=False)
        text, image = sub.column(2), sub.column(3)
        both = pc.binary_join_element_wise(pc.fill_null(text, ""), pc.fill_null(image, ""), "\x00")
        has = pc.or_(pc.is_valid(text), pc.is_valid(image))
        content_key[at] = _keys(pc.if_else(has, both, pa.scalar(None, pa.string())))
        src_key[at] = _keys(sub.column(4))
    return PoolIndex(
        ids=pool_ids,
        dataset=dataset_ids(pool_ids),
        modality=modality,
        src_key=src_key,
        content_key=content_key,
    )
