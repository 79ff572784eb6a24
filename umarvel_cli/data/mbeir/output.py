"""Where prepared rows go: table sinks that batch tuples into Arrow and resume, and the bad-row policy."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa

from umarvel_cli.artifacts.atomic import create_temp_file, replace_into
from umarvel_cli.artifacts.schemas import TABLES
from umarvel_cli.artifacts.shards import ShardWriter
from umarvel_cli.data.mbeir.records import RowError
from umarvel_cli.errors import UmarvelError

REJECTED = "rejected.jsonl"


class TableSink:
    """Collects rows in schema column order and hands Arrow batches to a ShardWriter.

    Rows come in blocks, as row tuples (`extend`) or as columns (`extend_columns`); they are kept as
    Python column lists until a batch is full. On resume the writer's completed shards already hold the
    first `rows_done` rows of this table's (deterministic) row stream, so that many rows are counted
    but not written again.
    """

    def __init__(self, out: Path, table: str, rows_per_shard: int, resume: bool, batch_rows: int = 65_536):
        self.schema = TABLES[table]
        self.writer = ShardWriter(out, table, self.schema, rows_per_shard=rows_per_shard, resume=resume)
        self.skip = self.writer.rows_done
        self.rows = 0
        self.batch_rows = min(batch_rows, rows_per_shard)
        self._columns: list[list] = [[] for _ in self.schema]
        self._rows: list[tuple] = []

    def add(self, row: tuple) -> None:
        """Append one row tuple (gathered and moved into the columns a few thousand at a time)."""
        self._rows.append(row)
        if len(self._rows) >= 4096:
            self._move_rows()

    def _move_rows(self) -> None:
        rows, self._rows = self._rows, []
        self.extend(rows)

    def extend(self, rows: list[tuple]) -> None:
        """Append a block of row tuples."""
        if rows:
            self.extend_columns([[row[i] for row in rows] for i in range(len(self._columns))])

    def extend_columns(self, columns: list[list]) -> None:
        """Append a block given column by column (equal lengths, schema order)."""
        if self._rows:
            self._move_rows()
        n = len(columns[0])
        self.rows += n
        if self.skip:
            dropped = min(self.skip, n)
            self.skip -= dropped
            columns = [col[dropped:] for col in columns]
        for pending, col in zip(self._columns, columns, strict=True):
            pending.extend(col)
        if len(self._columns[0]) >= self.batch_rows:
            self._emit()

    def extend_table(self, table: pa.Table) -> None:
        """Append a block that is already Arrow (in schema column order)."""
        self._move_rows()
        self._emit()
        n = table.num_rows
        self.rows += n
        if self.skip:
            dropped = min(self.skip, n)
            self.skip -= dropped
            table = table.slice(dropped)
        if table.num_rows:
            self.writer.write_batch(table)

    def _emit(self) -> None:
        if not self._columns[0]:
            return
        arrays = [pa.array(col, type=f.type) for col, f in zip(self._columns, self.schema, strict=True)]
        self._columns = [[] for _ in self.schema]
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> int:
        self._move_rows()
        self._emit()
        self.writer.close()
        return self.rows


class BadRows:
    """`fail`: the first bad row raises one UmarvelError naming file, line and field.
    `skip`: each bad row is counted per file and written to OUT/rejected.jsonl (renamed into place on close).
    """

    def __init__(self, on_error: str, out: Path) -> None:
        if on_error not in ("fail", "skip"):
            raise UmarvelError(
                f"unknown --on-error {on_error!r}", field="--on-error", expected="fail or skip"
            )
        self.fail = on_error == "fail"
        self.counts: Counter = Counter()
        self.path = out / REJECTED
        self._tmp, self._fh = None, None
        if not self.fail:  # a unique, never-followed temporary name (see artifacts/atomic.py)
            self._tmp, fd = create_temp_file(self.path)
            self._fh = os.fdopen(fd, "w", encoding="utf-8")

    def __call__(self, file: Path, line: int, error: RowError) -> None:
        if self.fail:
            raise UmarvelError(error.reason, file=file, line=line, field=error.field)
        self.counts[str(file)] += 1
        record = {"file": str(file), "line": line, "field": error.field, "reason": error.reason}
        self._fh.write(json.dumps(record) + "\n")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            replace_into(self._tmp, self.path)
            self._fh = None

    def abandon(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._tmp.unlink(missing_ok=True)
            self._fh = None
