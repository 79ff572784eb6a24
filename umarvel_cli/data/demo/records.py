"""Query and candidate records as M-BEIR writes them, plus the id and image registries.

Ids are "{dataset_id}:{n}" from one counter per dataset and kind, so they are unique across splits
and pools; pictures are registered once per (item, jitter) and named under `mbeir_images/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from umarvel_cli.data.demo.world import Item, Jitter


@dataclass(frozen=True)
class Picture:
    """An image file of the demo: what it shows and where it lives (relative to the M-BEIR root)."""

    path: str
    item: Item
    jitter: Jitter


Meaning = tuple[Item, tuple[str, ...]]  # an item and the attributes a text states about it


def agrees(item: Item, meaning: Meaning) -> bool:
    """Whether a text with this meaning describes `item` (it states nothing the item contradicts)."""
    said, attributes = meaning
    return all(getattr(item, a) == getattr(said, a) for a in attributes)


def _src(content: dict[str, Any] | None) -> str | None:
    return None if content is None else json.dumps(content, sort_keys=True)


@dataclass
class Candidate:
    did: str
    modality: str
    txt: str | None = None
    image: Picture | None = None
    src_content: dict[str, Any] | None = None
    entity: str | None = None  # entity id for the wiki tasks (cross-dataset positives)
    meaning: Meaning | None = None  # what the text says, for labelling every matching query

    def record(self) -> dict[str, Any]:
        """Key order of the real files: txt, img_path, modality, did, src_content."""
        return {
            "txt": self.txt,
            "img_path": None if self.image is None else self.image.path,
            "modality": self.modality,
            "did": self.did,
            "src_content": _src(self.src_content),
        }


@dataclass
class Query:
    qid: str
    modality: str
    task_id: int
    txt: str | None = None
    image: Picture | None = None
    src_content: dict[str, Any] | None = None
    pos: list[str] = field(default_factory=list)
    neg: list[str] = field(default_factory=list)
    entity: str | None = None
    cross: bool = False  # also gets the same entity's candidate of the partner dataset as a positive
    meaning: Meaning | None = None  # what the query text says about the wanted item

    def record(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "query_txt": self.txt,
            "query_img_path": None if self.image is None else self.image.path,
            "query_modality": self.modality,
            "query_src_content": _src(self.src_content),
            "pos_cand_list": list(self.pos),
            "neg_cand_list": list(self.neg),
            "task_id": self.task_id,
        }


def id_number(identifier: str) -> tuple[int, int]:
    """Sort key of an M-BEIR id: (dataset_id, n)."""
    head, _, tail = identifier.partition(":")
    return int(head), int(tail)


class Registry:
    """Hands out query ids, candidate ids and picture paths; remembers every picture to draw."""

    def __init__(self, images_dir: str) -> None:
        self.images_dir = images_dir
        self._qids: dict[int, int] = {}
        self._dids: dict[int, int] = {}
        self._pictures: dict[tuple[str, Item, Jitter], Picture] = {}
        self._images: dict[str, int] = {}

    def qid(self, dataset_id: int) -> str:
        self._qids[dataset_id] = self._qids.get(dataset_id, 0) + 1
        return f"{dataset_id}:{self._qids[dataset_id]}"

    def did(self, dataset_id: int) -> str:
        self._dids[dataset_id] = self._dids.get(dataset_id, 0) + 1
        return f"{dataset_id}:{self._dids[dataset_id]}"

    def picture(self, dataset: str, group: str, item: Item, jitter: Jitter) -> Picture:
        key = (dataset, item, jitter)
        if key not in self._pictures:
            n = self._images[dataset] = self._images.get(dataset, 0) + 1
            path = f"{self.images_dir}/{dataset}_images/{group}/{dataset}_{n:06d}.png"
            self._pictures[key] = Picture(path, item, jitter)
        return self._pictures[key]

    @property
    def pictures(self) -> list[Picture]:
        return list(self._pictures.values())
