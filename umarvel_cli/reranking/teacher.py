"""Reading a `teacher` table (the output of `rerank score`) with every check its readers need.

Fusion and distillation both read teacher scores here, so an interrupted table, non-finite
scores or ids the run and the tables do not know are refused the same way (one line, exit 2) before
anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import read_manifest, read_table
from umarvel_cli.artifacts.stage import PROGRESS
from umarvel_cli.errors import UmarvelError

STAGE = "rerank-score"
TABLE = "teacher"
SCORE_COLUMNS = ("retrieval_score", "rerank_score")


def teacher_folder(path: str | Path) -> Path:
    """The finished `rerank score` output folder at `path` (or above its teacher/ table); cheap:
    reads the manifest only, so commands call it before they write anything."""
    path = Path(path)
    if path.name == TABLE and not (path / TABLE).is_dir():
        path = path.parent
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is None:
        if (path / PROGRESS).is_file():
            raise UmarvelError(
                "interrupted teacher table (no manifest: `rerank score` did not finish)",
                file=path,
                expected="the same `umarvel rerank score` command run again to complete it",
            )
        raise UmarvelError(
            "not a `rerank score` output (no manifest)", file=path, expected="a teacher folder"
        )
    if manifest.stage != STAGE:
        raise UmarvelError(
            f"written by stage '{manifest.stage}'", file=path, expected=f"the output of '{STAGE}'"
        )
    return path


def read_teacher(path: str | Path) -> pa.Table:
    """The teacher table of a finished `rerank score` output folder, its scores all finite."""
    path = teacher_folder(path)
    table = read_table(path, TABLE)
    for column in SCORE_COLUMNS:
        values = table.column(column).to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UmarvelError(
                f"{int(bad.sum())} non-finite {column} value(s) (e.g. {values[i]} for "
                f"{table.column('qid')[i].as_py()!r} / {table.column('did')[i].as_py()!r})",
                file=path,
                field=column,
                expected="finite scores",
            )
    return table


def check_known(teacher: pa.Table, qids: pa.Array, dids: pa.Array, source: str | Path, what: str) -> None:
    """Refuse teacher rows whose query or candidate id is not among `qids` / `dids` (of `what`)."""
    for column, known in (("qid", qids), ("did", dids)):
        values = pc.unique(teacher.column(column))
        unknown = pc.filter(values, pc.invert(pc.is_in(values, value_set=known))).to_pylist()
        if unknown:
            raise UmarvelError(
                f"{len(unknown)} {column}(s) of the teacher scores are not in {what} "
                f"(e.g. {', '.join(map(repr, unknown[:3]))})",
                file=source,
                field=column,
                expected=f"teacher scores made for {what}",
            )
