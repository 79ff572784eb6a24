"""Where prepared rows go: table sinks that batch tuples into Arrow and resume, and the bad-row policy."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa

from umarvel_cli.artifacts.schemas import TABLES
from umarvel_cli.artifacts.shards import ShardWriter
from umarvel_cli.data.mbeir_records import RowError
from umarvel_cli.errors import UmarvelError

REJECTED = "rejected.jsonl"


class TableSink:
    """Collects row tuples in schema column order and hands Arrow batches to a ShardWriter.

    On resume the writer's completed shards already hold the first `rows_done` rows of this table's
    (deterministic) row stream, so that many rows are counted but not written again.
    """

    def __init__(self, out: Path, table: str, rows_per_shard: int, resume: bool, batch_rows: int = 32_768):
        self.schema = TABLES[table]
        self.writer = ShardWriter(out, table, self.schema, rows_per_shard=rows_per_shard, resume=resume)
        self.skip = self.writer.rows_done
        self.rows = 0
        self.batch_rows = min(batch_rows, rows_per_shard)
        self._pending: list[tuple] = []

    def add(self, row: tuple) -> None:
        self.rows += 1
        if self.skip:
            self.skip -= 1
            return
        self._pending.append(row)
        if len(self._pending) >= self.batch_rows:
            self._emit()

    def _emit(self) -> None:
        if not self._pending:
            return
        columns = list(zip(*self._pending, strict=True))
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, self.schema, strict=True)]
        self._pending = []
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> int:
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
        self._tmp = out / (REJECTED + ".tmp")
        self._fh = None if self.fail else open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115

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
            os.replace(self._tmp, self.path)
            self._fh = None

    def abandon(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._tmp.unlink(missing_ok=True)
            self._fh = None
