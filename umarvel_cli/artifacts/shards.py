"""Sharded Parquet tables: `DIR/<table>/part-00000.parquet`, each shard written under a temporary
name and renamed when complete, so a reader never sees half a shard and a killed writer resumes
from its completed shards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from umarvel_cli.artifacts.atomic import atomic_output, remove_stale_temps
from umarvel_cli.artifacts.schemas import SCHEMA_VERSION, TABLE_KEY, VERSION_KEY
from umarvel_cli.errors import SchemaError, UmarvelError

SHARD_RE = re.compile(r"^part-(\d{5})\.parquet$")


def table_dir(root: str | Path, table: str) -> Path:
    return Path(root) / table


def list_shards(root: str | Path, table: str) -> list[Path]:
    """Completed shards of a table in order (temporary files are ignored)."""
    d = table_dir(root, table)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if SHARD_RE.match(p.name))


def _check_schema(path: Path, schema: pa.Schema, table: str) -> None:
    meta = schema.metadata or {}
    version = meta.get(VERSION_KEY)
    if version is None:
        raise SchemaError("not an umarvel table (no schema version)", file=path)
    if int(version) != SCHEMA_VERSION:
        raise SchemaError(
            f"schema version {int(version)} of table '{table}' is not the version this umarvel reads",
            file=path,
            expected=f"version {SCHEMA_VERSION}; re-run the stage that wrote it with --force",
        )
    name = meta.get(TABLE_KEY, b"").decode()
    if name != table:
        raise SchemaError(f"holds table '{name}', not '{table}'", file=path)


def open_shard(path: Path, table: str) -> pq.ParquetFile:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise SchemaError(f"unreadable Parquet shard ({e})", file=path) from e
    _check_schema(path, pf.schema_arrow, table)
    return pf


def require_table(root: str | Path, table: str) -> list[Path]:
    shards = list_shards(root, table)
    if not shards:
        raise UmarvelError(
            f"no '{table}' table here",
            file=table_dir(root, table),
            expected="the output folder of the stage that writes it",
        )
    return shards


def iter_batches(
    root: str | Path, table: str, columns: Sequence[str] | None = None, batch_size: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """Stream a table shard by shard; never loads more than one batch."""
    for path in require_table(root, table):
        pf = open_shard(path, table)
        yield from pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None)


def iter_rows(root: str | Path, table: str, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    for batch in iter_batches(root, table, columns):
        yield from batch.to_pylist()


def read_table(
    root: str | Path, table: str, columns: Sequence[str] | None = None, filters: Any = None
) -> pa.Table:
    """Read a whole table (for tables that fit in memory: qrels, queries of a split, a pool's ids)."""
    shards = require_table(root, table)
    parts = []
    for path in shards:
        open_shard(path, table)
        parts.append(pq.read_table(path, columns=list(columns) if columns else None, filters=filters))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def shard_rows(path: Path) -> int:
    """Rows of one shard from its footer; a corrupt shard is a one-line error naming it."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowInvalid) as e:
        raise SchemaError(f"unreadable Parquet shard ({e})", file=path) from e


def count_rows(root: str | Path, table: str) -> int:
    return sum(shard_rows(p) for p in list_shards(root, table))


def _atomic_write_table(data: pa.Table, path: Path, compression: str = "zstd") -> None:
    with atomic_output(path) as fh:
        pq.write_table(data, fh, compression=compression)


class ShardWriter:
    """Buffers rows and writes a shard every `rows_per_shard` rows.

    With `resume=True` it keeps the completed shards already on disk: `rows_done` says how many rows
    they hold, and the caller skips that many rows of its (deterministic) input stream.
    `compression` is zstd by default; tables of random-looking floats (embeddings) barely compress
    and read faster with "none".
    """

    def __init__(
        self,
        root: str | Path,
        table: str,
        schema: pa.Schema,
        rows_per_shard: int = 100_000,
        resume: bool = False,
        compression: str = "zstd",
    ) -> None:
        if rows_per_shard < 1:
            raise ValueError("rows_per_shard must be >= 1")
        self.table = table
        self.schema = schema
        self.rows_per_shard = rows_per_shard
        self.compression = compression
        self.dir = table_dir(root, table)
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.dir)
        existing = list_shards(root, table)
        if existing and not resume:
            for p in existing:
                p.unlink()
            existing = []
        self.next_shard = len(existing)
        self.rows_done = sum(shard_rows(p) for p in existing)
        self.rows_written = self.rows_done
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            self.write_batch(pa.RecordBatch.from_pylist(rows, schema=self.schema))

    def write_columns(self, columns: Mapping[str, Any]) -> None:
        self.write_batch(pa.RecordBatch.from_pydict(dict(columns), schema=self.schema))

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.Table):
            batches = batch.cast(self.schema).to_batches()
        else:
            batches = [batch if batch.schema.equals(self.schema) else batch.cast(self.schema)]
        for b in batches:
            while b.num_rows:
                room = self.rows_per_shard - self._buffered
                head, b = b.slice(0, room), b.slice(room)
                self._buffer.append(head)
                self._buffered += head.num_rows
                if self._buffered >= self.rows_per_shard:
                    self.flush()

    def flush(self) -> None:
        """Write what is buffered as one complete shard (no-op when empty)."""
        if not self._buffered:
            return
        data = pa.Table.from_batches(self._buffer, schema=self.schema)
        _atomic_write_table(data, self.dir / f"part-{self.next_shard:05d}.parquet", self.compression)
        self.next_shard += 1
        self.rows_written += self._buffered
        self._buffer, self._buffered = [], 0

    def close(self) -> int:
        """Flush the last partial shard; an empty table still gets one (empty) shard so readers find it."""
        self.flush()
        if self.next_shard == 0:
            _atomic_write_table(self.schema.empty_table(), self.dir / "part-00000.parquet", self.compression)
            self.next_shard = 1
        return self.rows_written

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        # On error, completed shards stay for resume; the buffer is dropped.
