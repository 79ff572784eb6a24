"""The union pool's per-candidate facts and the released code's local train pools (spec 9.2)."""

from __future__ import annotations

import pyarrow as pa

from umarvel_cli.artifacts import TABLES, ShardWriter
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.mining import pools
from umarvel_cli.mining.pools import dataset_ids, pool_index

SPEC = load_mbeir_spec()
ROWS = [  # did, modality, text, image, src_content
    ("5:1", "text", "an article", None, '{"wikidata_id": "Q1"}'),
    ("6:1", "text", "an article", None, '{"wikidata_id": "Q1"}'),  # InfoSeek twin of 5:1
    ("6:2", "image,text", "a caption", "a.png", None),
    ("5:2", "text", "another article", None, None),
    ("9:1", "image", None, "a.png", None),
    ("9:2", "image", None, None, None),  # no content at all
    ("0:7", "image", None, "b.png", None),  # not in the pool
]


def _tables(tmp_path, monkeypatch):
    monkeypatch.setattr(pools, "CANDIDATE_BATCH", 3)  # several batches
    cols = list(zip(*ROWS, strict=True))
    names = ["did", "modality", "text", "image", "src_content"]
    with ShardWriter(tmp_path, "candidates", TABLES["candidates"]) as w:
        w.write_columns(dict(zip(names, cols, strict=True)))
    return tmp_path


def test_pool_index_keys_modalities_and_local_pools(tmp_path, monkeypatch):
    data = _tables(tmp_path, monkeypatch)
    ids = pa.array(["9:2", "6:2", "5:1", "6:1", "5:2", "9:1", "8:5"])  # 8:5 has no candidate row
    index = pool_index(data, ids)
    assert index.dataset.tolist() == [9, 6, 5, 6, 5, 9, 8]
    assert index.modality.tolist() == [1, 2, 0, 0, 0, 1, -1]
    assert index.src_key[2] == index.src_key[3] >= 0 and index.src_key[[0, 1, 4, 5, 6]].tolist() == [-1] * 5
    ck = index.content_key
    assert ck[2] == ck[3] >= 0 and ck[0] == -1 and ck[6] == -1
    assert len({ck[1], ck[2], ck[4], ck[5]}) == 4  # image "a.png" alone differs from caption + "a.png"
    assert index.rows_of(["5:1", "0:7", "9:1"]).tolist() == [2, -1, 5]
    oven6 = index.local_mask(SPEC.task("oven_task6"))  # text candidates of OVEN and InfoSeek together
    assert ids.filter(pa.array(oven6)).to_pylist() == ["5:1", "6:1", "5:2"]
    coco0 = index.local_mask(SPEC.task("mscoco_task0"))
    assert ids.filter(pa.array(coco0)).to_pylist() == ["9:2", "9:1"]
    assert ids.take(pa.array(index.canonical)).to_pylist() == sorted(ids.to_pylist())


def test_dataset_ids_of_odd_ids():
    assert dataset_ids(pa.array(["3:14", "x:1", "12:0", "nocolon"])).tolist() == [3, -1, 12, -1]
