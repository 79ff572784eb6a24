"""Append-only JSON-lines logs (`train_log.jsonl`): a kill can tear the last line; it is dropped.

A torn line anywhere but the end is real damage and a one-line error naming the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from umarvel_cli.errors import UmarvelError


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The complete records of a log; a half-written last line (a killed writer) is left out."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    rows: list[dict[str, Any]] = []
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError) as e:
            if i == last:
                break  # torn by a kill mid-write
            raise UmarvelError(f"damaged log record ({e})", file=path, line=i + 1) from None
        rows.append(row)
    return rows


def rewrite_log(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Replace a log with `rows` (used to cut it back to a checkpoint); atomic."""
    from umarvel_cli.artifacts.atomic import atomic_write_text

    atomic_write_text(Path(path), "".join(json.dumps(r) + "\n" for r in rows))
