"""Near-duplicate marks: which demo candidates show the same thing, so mined false negatives can be counted.

The generator knows what each candidate was made from. Candidates share a group when they are
  item:...     the same object drawn again (any jitter, any dataset), or a text written about it
               (another caption of the same picture, a news line about the same scene);
  entity:...   about the same wiki entity (OVEN and InfoSeek both hold one);
  product:...  the same fashion product (other scene, or its product line).
The marks live in `near_duplicates.tsv` beside README.txt, outside the M-BEIR layout files, and are
derived after everything is drawn, so they never change the data or its bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from umarvel_cli.data.demo import texts
from umarvel_cli.data.demo.build import DemoData
from umarvel_cli.data.demo.records import Candidate
from umarvel_cli.data.demo.world import Item

MARKS_FILE = "near_duplicates.tsv"
HEADER = "did\tgroup"


def _item(item: Item) -> str:
    return "item:" + ",".join(dataclasses.astuple(item))


def candidate_groups(c: Candidate, fashion: bool) -> Iterator[str]:
    items = [c.image.item] if c.image is not None else []
    if c.meaning is not None:
        items.append(c.meaning[0])
    for item in items:
        yield _item(item)
        if fashion:
            yield "product:" + ",".join(getattr(item, a) for a in texts.FASHION_ATTRIBUTES)
    if c.entity is not None:
        yield f"entity:{c.entity}"


def demo_marks(data: DemoData) -> list[tuple[str, str]]:
    """(did, group) for every candidate whose group holds at least two candidates."""
    members: dict[str, set[str]] = {}
    for b in data.builds:
        fashion = b.style.domain == "fashion"
        for c in b.pool:
            for g in candidate_groups(c, fashion):
                members.setdefault(g, set()).add(c.did)
    return sorted((d, g) for g, dids in members.items() if len(dids) > 1 for d in dids)


def write_marks(data: DemoData, root: Path) -> int:
    """Write `near_duplicates.tsv`; returns the number of marks."""
    rows = demo_marks(data)
    lines = [HEADER, *(f"{d}\t{g}" for d, g in rows)]
    (Path(root) / MARKS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)
