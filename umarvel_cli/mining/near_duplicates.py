"""Planted near-duplicate marks (the demo's `near_duplicates.tsv`) and the false negatives they reveal.

The demo generator knows when it draws the same object again or writes another caption of it; it
lists such candidates under a shared group (`did<TAB>group`, one line per mark, a did may be in
several groups). A mined negative that shares a group with one of its query's labelled positives is
a false negative the labels missed. Real M-BEIR has no such marks, so this is a demo-only measure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.data.demo.marks import HEADER, MARKS_FILE
from umarvel_cli.errors import UmarvelError


def read_marks(path: Path) -> dict[str, frozenset[str]]:
    """did -> the groups it is marked with."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != HEADER:
        raise UmarvelError("not a near-duplicate marks file", file=path, line=1, expected=repr(HEADER))
    groups: dict[str, set[str]] = {}
    for n, line in enumerate(lines[1:], start=2):
        did, sep, group = line.partition("\t")
        if not sep or not did or not group:
            raise UmarvelError("expected two tab-separated fields", file=path, line=n)
        groups.setdefault(did, set()).add(group)
    return {d: frozenset(g) for d, g in groups.items()}


def find_marks(data: Path) -> dict[str, frozenset[str]] | None:
    """The marks of the source folder the tables were prepared from, when it has them (the demo)."""
    manifest = read_manifest(data)
    root = manifest.extra.get("images_root") if manifest is not None else None
    path = Path(root) / MARKS_FILE if root else None
    return read_marks(path) if path is not None and path.is_file() else None


@dataclass
class MarkedCount:
    negatives: int = 0
    marked: int = 0

    @property
    def share(self) -> float:
        return self.marked / self.negatives if self.negatives else 0.0


def count_marked(
    pos_ids: Iterable[list[str]], neg_ids: Iterable[list[str]], marks: dict[str, frozenset[str]]
) -> MarkedCount:
    """How many negatives share a near-duplicate group with a positive of their own query."""
    total = MarkedCount()
    empty: frozenset[str] = frozenset()
    for pos, negs in zip(pos_ids, neg_ids, strict=True):
        groups = empty.union(*(marks.get(p, empty) for p in pos))
        total.negatives += len(negs)
        if groups:
            total.marked += sum(1 for d in negs if not groups.isdisjoint(marks.get(d, empty)))
    return total
