"""TREC text formats, so runs and qrels move between umarvel, trec_eval, pyserini and UniIR.

- run: `qid Q0 did rank score run_id` (UniIR appends a 7th column, the task id, which we accept);
- qrels: standard `qid 0 did relevance` or M-BEIR's `qid 0 did relevance task_id`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from umarvel_cli.artifacts.atomic import atomic_output, atomic_write_text, is_stdio
from umarvel_cli.artifacts.schemas import TABLES
from umarvel_cli.console import info
from umarvel_cli.errors import UmarvelError


@dataclass(frozen=True)
class QrelRow:
    qid: str
    did: str
    relevance: int
    task_id: int | None


def _lines(path: Path, widths: tuple[int, ...], expected: str) -> Iterable[tuple[int, list[str]]]:
    """(line number, columns) of every non-blank line of a text file (`-`: standard input); a line with
    another number of columns, or invalid UTF-8, is refused naming the line."""
    if is_stdio(path):
        yield from _split(sys.stdin.buffer, path, widths, expected)
        return
    if not path.is_file():
        raise UmarvelError("file not found", file=path)
    with open(path, "rb") as fh:
        yield from _split(fh, path, widths, expected)


def _split(
    fh: BinaryIO, path: Path, widths: tuple[int, ...], expected: str
) -> Iterable[tuple[int, list[str]]]:
    for n, raw in enumerate(fh, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UmarvelError(f"not valid UTF-8 (byte {e.start})", file=path, line=n) from None
        parts = text.split()
        if parts:
            if len(parts) not in widths:
                raise UmarvelError(f"{len(parts)} columns", file=path, line=n, expected=expected)
            yield n, parts


def _int(value: str, path: Path, line: int, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UmarvelError(f"{name} {value!r} is not an integer", file=path, line=line, field=name) from None


def _float(value: str, path: Path, line: int, name: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise UmarvelError(f"{name} {value!r} is not a number", file=path, line=line, field=name) from None
    if not math.isfinite(x):
        raise UmarvelError(f"{name} {value!r} is not finite", file=path, line=line, field=name)
    return x


def read_trec_run(path: str | Path) -> pa.Table:
    """Read a TREC run file into a `run` table (qid, did, rank, score), in file order."""
    path = Path(path)
    qids: list[str] = []
    dids: list[str] = []
    ranks: list[int] = []
    scores: list[float] = []
    seen: dict[tuple[str, str], int] = {}
    duplicates: list[tuple[int, int]] = []
    expected = "'qid Q0 did rank score run_id' (6 columns, or 7 with UniIR's task id)"
    for n, parts in _lines(path, (6, 7), expected):
        first = seen.setdefault((parts[0], parts[2]), n)
        if first != n:
            duplicates.append((n, first))
            continue
        qids.append(parts[0])
        dids.append(parts[2])
        ranks.append(_int(parts[3], path, n, "rank"))
        scores.append(_float(parts[4], path, n, "score"))
    if duplicates:
        line, first = duplicates[0]
        info(
            f"[yellow]warning: {path}:{line}: {len(duplicates):,} repeated (qid, did) row(s) ignored, each "
            f"candidate counted once at its first line (this one repeats line {first}), as trec_eval does[/]"
        )
    return pa.Table.from_pydict(
        {"qid": qids, "did": dids, "rank": ranks, "score": scores}, schema=TABLES["run"]
    )


def write_trec_run(
    path: str | Path, run: pa.Table | Iterable[pa.RecordBatch], run_id: str = "umarvel"
) -> Path:
    """Write a `run` table (or its batches) as a TREC run file, atomically, with Arrow's CSV writer
    (fast on runs of millions of rows). Scores keep float32's shortest exact form. `-` writes to
    standard output; a link, FIFO or device at `path` is never replaced."""
    if not run_id or any(c.isspace() for c in run_id):
        raise UmarvelError(f"run id {run_id!r} must be one word", field="run_id")
    path = Path(path)
    batches = run.to_batches() if isinstance(run, pa.Table) else run
    options = pacsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none")
    with atomic_output(path) as fh:
        for batch in batches:
            n = batch.num_rows
            for name in ("qid", "did"):
                if pc.any(pc.match_substring_regex(batch.column(name), r"\s")).as_py():
                    raise UmarvelError(f"a {name} holds whitespace; TREC files cannot carry it", field=name)
            columns = {
                "qid": batch.column("qid"),
                "q0": pa.repeat("Q0", n) if n else pa.array([], pa.string()),
                "did": batch.column("did"),
                "rank": batch.column("rank"),
                "score": batch.column("score"),
                "run_id": pa.repeat(run_id, n) if n else pa.array([], pa.string()),
            }
            pacsv.write_csv(pa.table(columns), fh, options)
    return path


def read_qrels(path: str | Path) -> list[QrelRow]:
    """Read 4-column TREC qrels or 5-column M-BEIR qrels (the 5th column is the task id)."""
    path = Path(path)
    rows: list[QrelRow] = []
    expected = "'qid 0 did relevance' or M-BEIR's 'qid 0 did relevance task_id'"
    for n, parts in _lines(path, (4, 5), expected):
        task = _int(parts[4], path, n, "task_id") if len(parts) == 5 else None
        rows.append(QrelRow(parts[0], parts[2], _int(parts[3], path, n, "relevance"), task))
    return rows


def write_qrels(path: str | Path, rows: Iterable[QrelRow]) -> Path:
    """Write qrels; 5 columns (M-BEIR) when every row has a task id, else 4 (trec_eval)."""
    rows = list(rows)
    five = bool(rows) and all(r.task_id is not None for r in rows)
    path = Path(path)
    text = "".join(f"{r.qid} 0 {r.did} {r.relevance}{f' {r.task_id}' if five else ''}\n" for r in rows)
    atomic_write_text(path, text)
    return path
