"""Read any system's run (our Parquet run folder or a TREC run file) into per-query rankings.

Rankings are ordered by the metrics' tie rule (score descending, then the run's rank, then id), and
candidate ids become integer codes so a 19M-row run stays compact in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import fingerprint, read_table
from umarvel_cli.artifacts.atomic import is_stdio
from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.artifacts.trec import read_trec_run
from umarvel_cli.errors import UmarvelError
from umarvel_cli.retrieval.run_table import RUN_TABLE


@dataclass
class Rankings:
    by_qid: dict[str, list[int]]  # qid -> candidate codes, best first
    dictionary: pa.Array  # code -> candidate id

    def codes(self, dids: list[str]) -> list[int]:
        """Codes of candidate ids; ids never retrieved get distinct negative codes."""
        found = pc.index_in(pa.array(dids, type=pa.string()), value_set=self.dictionary).to_pylist()
        return [c if c is not None else -(i + 1) for i, c in enumerate(found)]

    def relevance(self, qrels: dict[str, dict[str, int]]) -> dict[str, dict[int, int]]:
        """The qrels in code space (positives absent from the run keep distinct negative codes)."""
        flat = [(q, d, r) for q, judged in qrels.items() for d, r in judged.items()]
        codes = self.codes([d for _, d, _ in flat])
        out: dict[str, dict[int, int]] = {}
        for (q, _, r), c in zip(flat, codes, strict=True):
            out.setdefault(q, {})[c] = r
        return out


def read_run(path: str | Path) -> pa.Table:
    """A `run` table from a TREC file (`-`: standard input), a finished search output folder or its
    `run/` table folder."""
    p = Path(path)
    if is_stdio(path) or p.is_file():
        return read_trec_run(p)
    if p.name == RUN_TABLE and p.is_dir() and not (p / RUN_TABLE).is_dir():
        p = p.parent
    if (p / RUN_TABLE).is_dir():
        require_complete(p, ("search",), "--run")
        return read_table(p, RUN_TABLE)
    raise UmarvelError(
        "not a run", file=p, expected="a TREC run file or an `umarvel search` output folder (holding run/)"
    )


def run_fingerprint(path: str | Path, table: pa.Table | None = None) -> str:
    """A run's name in the manifest; a run read from standard input is named by its content."""
    if is_stdio(path) and table is not None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return "stdin:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    return fingerprint(path)


def validate_run(run: pa.Table, qids: pa.Array, dids: pa.Array, split: str, source: str | Path) -> None:
    """Refuse a run whose query or candidate ids the prepared data does not know."""
    if run.num_rows == 0:
        raise UmarvelError("the run is empty", file=source)
    checks = [
        ("qid", qids, f"query id(s) of the run are not {split} queries of the prepared data",
         f"a run over the {split} split of these tables"),
        ("did", dids, "candidate id(s) of the run are not in the prepared candidates",
         "candidate ids from the prepared candidates table"),
    ]  # fmt: skip
    for column, known, what, expected in checks:
        values = pc.unique(run.column(column))
        unknown = pc.filter(values, pc.invert(pc.is_in(values, value_set=known))).to_pylist()
        if unknown:
            raise UmarvelError(
                f"{len(unknown)} {what} (e.g. {', '.join(map(repr, unknown[:3]))})",
                file=source,
                field=column,
                expected=expected,
            )


def to_rankings(run: pa.Table) -> Rankings:
    """Group a run by query, each ranking ordered by (score desc, rank asc, did asc)."""
    ordered = run.sort_by(
        [("qid", "ascending"), ("score", "descending"), ("rank", "ascending"), ("did", "ascending")]
    )
    q = pc.dictionary_encode(ordered.column("qid").combine_chunks())
    d = pc.dictionary_encode(ordered.column("did").combine_chunks())
    q_codes = q.indices.to_numpy(zero_copy_only=False)
    d_codes = d.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, q_codes[1:] != q_codes[:-1]]) if len(q_codes) else np.array([], int)
    ends = np.r_[starts[1:], len(q_codes)]
    names = q.dictionary.to_pylist()
    by_qid = {names[q_codes[s]]: d_codes[s:e].tolist() for s, e in zip(starts, ends, strict=True)}
    return Rankings(by_qid, d.dictionary)
