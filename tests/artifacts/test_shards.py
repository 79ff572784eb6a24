from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from umarvel_cli.artifacts import (
    ShardWriter,
    count_rows,
    embeddings_schema,
    iter_batches,
    list_shards,
    read_table,
)
from umarvel_cli.artifacts.schemas import TABLES, VERSION_KEY
from umarvel_cli.errors import SchemaError, UmarvelError


def _pool_rows(n: int, start: int = 0) -> list[dict]:
    return [{"pool": "p", "did": f"1:{i}"} for i in range(start, start + n)]


def test_writer_splits_into_shards_and_reads_back(tmp_path):
    with ShardWriter(tmp_path, "pools", TABLES["pools"], rows_per_shard=4) as w:
        w.write_rows(_pool_rows(10))
    assert [p.name for p in list_shards(tmp_path, "pools")] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert count_rows(tmp_path, "pools") == 10
    assert read_table(tmp_path, "pools").column("did").to_pylist() == [f"1:{i}" for i in range(10)]
    assert sum(b.num_rows for b in iter_batches(tmp_path, "pools", batch_size=3)) == 10


def test_resume_keeps_completed_shards_and_drops_partial_buffer(tmp_path):
    w = ShardWriter(tmp_path, "pools", TABLES["pools"], rows_per_shard=4)
    w.write_rows(_pool_rows(6))  # one full shard on disk, 2 rows buffered
    del w  # killed: the buffer is lost, no tmp file is visible
    resumed = ShardWriter(tmp_path, "pools", TABLES["pools"], rows_per_shard=4, resume=True)
    assert resumed.rows_done == 4
    resumed.write_rows(_pool_rows(6, start=resumed.rows_done))
    resumed.close()
    assert read_table(tmp_path, "pools").column("did").to_pylist() == [f"1:{i}" for i in range(10)]


def test_fresh_writer_replaces_old_shards(tmp_path):
    with ShardWriter(tmp_path, "pools", TABLES["pools"], rows_per_shard=2) as w:
        w.write_rows(_pool_rows(6))
    with ShardWriter(tmp_path, "pools", TABLES["pools"], rows_per_shard=2) as w:
        w.write_rows(_pool_rows(1))
    assert count_rows(tmp_path, "pools") == 1


def test_empty_table_still_has_a_shard(tmp_path):
    ShardWriter(tmp_path, "qrels", TABLES["qrels"]).close()
    assert read_table(tmp_path, "qrels").num_rows == 0


def test_schema_version_mismatch_is_refused(tmp_path):
    with ShardWriter(tmp_path, "pools", TABLES["pools"]) as w:
        w.write_rows(_pool_rows(2))
    path = list_shards(tmp_path, "pools")[0]
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[VERSION_KEY] = b"999"
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(SchemaError, match="schema version 999"):
        read_table(tmp_path, "pools")


def test_wrong_table_name_is_refused(tmp_path):
    with ShardWriter(tmp_path, "pools", TABLES["pools"]) as w:
        w.write_rows(_pool_rows(1))
    (tmp_path / "pools").rename(tmp_path / "qrels")
    with pytest.raises(SchemaError, match="holds table 'pools'"):
        read_table(tmp_path, "qrels")


def test_missing_table_names_the_folder(tmp_path):
    with pytest.raises(UmarvelError, match="no 'queries' table"):
        read_table(tmp_path, "queries")


def test_embedding_schema_round_trip(tmp_path):
    schema = embeddings_schema(3, "float16")
    with ShardWriter(tmp_path, "embeddings", schema) as w:
        w.write_columns({"id": ["a", "b"], "embedding": [[1, 0, 0], [0, 1, 0]]})
    t = read_table(tmp_path, "embeddings")
    assert t.schema.field("embedding").type == pa.list_(pa.float16(), 3)
    assert t.column("id").to_pylist() == ["a", "b"]


def test_uncompressed_shards_read_back_the_same(tmp_path):
    with ShardWriter(tmp_path / "a", "pools", TABLES["pools"], compression="none") as w:
        w.write_rows(_pool_rows(5))
    path = list_shards(tmp_path / "a", "pools")[0]
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "UNCOMPRESSED"
    assert read_table(tmp_path / "a", "pools").column("did").to_pylist() == [f"1:{i}" for i in range(5)]
