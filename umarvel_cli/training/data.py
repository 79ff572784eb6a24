"""Training examples built from the prepared tables: NLI and caption pairs, M-BEIR train queries.

An example is (query, positive, hard negatives) as formatter `Record`s plus the content keys the
loss uses to drop false negatives: `pos_key` names the positive (a did, or the pair's text/image),
`query_pos_keys` every positive the query has. Choices that vary per epoch (which positive of
several, which instruction variant) come from a generator seeded by (seed, epoch, index), so a
resumed run sees exactly the examples an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.paths import resolve_image
from umarvel_cli.artifacts.shards import read_table, table_dir
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.config import TrainConfig


@dataclass
class TrainExample:
    query: Record
    positive: Record
    negatives: list[Record] = field(default_factory=list)
    pos_key: str = ""
    neg_keys: list[str] = field(default_factory=list)
    query_pos_keys: list[str] = field(default_factory=list)


class TrainingSet(Protocol):
    """What the trainer needs: a size, a group per example (for task batches) and the examples."""

    groups: np.ndarray

    def __len__(self) -> int: ...

    def example(self, index: int, epoch: int) -> TrainExample: ...

    def describe(self) -> dict[str, Any]: ...


def images_root(data: str | Path) -> Path:
    """Where a table folder's relative image paths point (its manifest's `extra.images_root`)."""
    manifest = read_manifest(data)
    root = manifest.extra.get("images_root") if manifest is not None else None
    return Path(root) if root else Path(data)


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


class PairsSet:
    """Rows of the `pairs` table of one kind: nli (text → text, contradiction as negative) or caption."""

    def __init__(self, data: str | Path, kind: str, hard_negatives: int) -> None:
        table = read_table(data, "pairs")
        table = table.filter(pc.equal(table["kind"], kind))
        if table.num_rows == 0:
            raise UmarvelError(
                f"no '{kind}' rows in the pairs table",
                file=table_dir(data, "pairs"),
                expected=f"a pairs table prepared for the {kind} stage",
            )
        self.kind = kind
        self.root = images_root(data)
        self.rows = table.to_pylist()
        self.hard_negatives = hard_negatives
        self.groups = np.zeros(len(self.rows), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def _record(self, row: dict, side: str, rid: str) -> tuple[Record, str] | None:
        text, image = row.get(f"{side}_text"), row.get(f"{side}_image")
        if not text and not image:
            return None
        path = resolve_image(self.root, image) if image else None
        modality = "image,text" if text and image else ("image" if image else "text")
        key = f"i:{image}" if image else f"t:{text}"
        return Record(id=rid, text=text or None, image=path, modality=modality), key

    def example(self, index: int, epoch: int) -> TrainExample:
        row = self.rows[index]
        pid = row["pair_id"]
        query = self._record(row, "query", pid)
        pos = self._record(row, "pos", f"{pid}+")
        if query is None or pos is None:
            raise UmarvelError(
                f"pair {pid} has an empty query or positive",
                file=table_dir(".", "pairs"),
                field="query_text/pos_text",
            )
        negs, neg_keys = [], []
        if self.hard_negatives:
            neg = self._record(row, "neg", f"{pid}-")
            if neg is not None:
                negs, neg_keys = [neg[0]], [neg[1]]
        return TrainExample(query[0], pos[0], negs, pos[1], neg_keys, [pos[1]])

    def describe(self) -> dict[str, int]:
        with_neg = sum(1 for r in self.rows if r.get("neg_text") or r.get("neg_image"))
        return {"examples": len(self.rows), "with_negative": with_neg}


def candidate_record(root: Path, did: str, row: dict[str, Any]) -> Record:
    """A candidate row (text, image path relative to `root`, modality) as the record training encodes."""
    image = resolve_image(root, row["image"]) if row["image"] else None
    return Record(id=did, text=row["text"], image=image, modality=row["modality"])


class MbeirSet:
    """M-BEIR training queries: the query with an instruction, one of its `pos` candidates as positive."""

    def __init__(
        self, data: str | Path, hard_negatives: int, instruction: str, seed: int, split: str = "train"
    ) -> None:
        queries = read_table(
            data,
            "queries",
            ["qid", "split", "task_id", "dataset_id", "modality", "text", "image", "pos", "neg"],
            filters=[("split", "=", split)],
        )
        if queries.num_rows == 0:
            raise UmarvelError(
                f"no {split} queries", file=table_dir(data, "queries"), expected=f"split '{split}' rows"
            )
        self.rows = queries.to_pylist()
        self.hard_negatives = hard_negatives
        self.instruction = instruction
        self.seed = seed
        self.root = images_root(data)
        needed = {d for r in self.rows for d in r["pos"]}
        if hard_negatives:
            needed |= {d for r in self.rows for d in r["neg"]}
        cands = read_table(data, "candidates", ["did", "modality", "text", "image"])
        cands = cands.filter(pc.is_in(cands["did"], value_set=pa.array(sorted(needed), pa.string())))
        self.candidates = {r["did"]: r for r in cands.to_pylist()}
        self._check_ids(data)
        self.prompts = self._instructions(data) if instruction != "none" else {}
        tasks = sorted({(r["dataset_id"], r["task_id"]) for r in self.rows})
        code = {t: i for i, t in enumerate(tasks)}
        self.groups = np.array([code[(r["dataset_id"], r["task_id"])] for r in self.rows], dtype=np.int64)

    def _check_ids(self, data: str | Path) -> None:
        for r in self.rows:
            if not r["pos"]:
                raise UmarvelError(f"train query {r['qid']} has no positive", file=table_dir(data, "queries"))
            missing = [d for d in r["pos"] if d not in self.candidates]
            if self.hard_negatives:
                missing += [d for d in r["neg"] if d not in self.candidates]
            if missing:
                raise UmarvelError(
                    f"train query {r['qid']} names candidate {missing[0]!r}, which is not in the candidate table",
                    file=table_dir(data, "queries"),
                    field="pos" if missing[0] in r["pos"] else "neg",
                    expected="ids present in the candidates table",
                )

    def _instructions(self, data: str | Path) -> dict[tuple[int, str, str], list[str]]:
        table = read_table(data, "instructions").to_pylist()
        prompts = {(r["dataset_id"], r["query_modality"], r["cand_modality"]): r["prompts"] for r in table}
        for r in self.rows:
            key = (r["dataset_id"], r["modality"], self.candidates[r["pos"][0]]["modality"])
            if not prompts.get(key):
                raise UmarvelError(
                    f"no instruction for dataset {key[0]}, {key[1]} -> {key[2]} (query {r['qid']})",
                    file=table_dir(data, "instructions"),
                    expected="a prompts row for every (dataset, query modality, candidate modality) trained",
                )
        return prompts

    def __len__(self) -> int:
        return len(self.rows)

    def _candidate(self, did: str) -> Record:
        return candidate_record(self.root, did, self.candidates[did])

    def example(self, index: int, epoch: int) -> TrainExample:
        r = self.rows[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        pos = _pick(rng, r["pos"])
        instruction = None
        if self.instruction != "none":
            options = self.prompts[(r["dataset_id"], r["modality"], self.candidates[pos]["modality"])]
            instruction = options[0] if self.instruction == "first" else _pick(rng, options)
        image = resolve_image(self.root, r["image"]) if r["image"] else None
        query = Record(
            id=r["qid"], text=r["text"], image=image, instruction=instruction, modality=r["modality"]
        )
        negs = list(r["neg"][: self.hard_negatives]) if self.hard_negatives else []
        return TrainExample(
            query=query,
            positive=self._candidate(pos),
            negatives=[self._candidate(d) for d in negs],
            pos_key=pos,
            neg_keys=negs,
            query_pos_keys=list(r["pos"]),
        )

    def describe(self) -> dict[str, int]:
        return {
            "examples": len(self.rows),
            "tasks": int(self.groups.max()) + 1,
            "candidates_used": len(self.candidates),
        }


def load_training_set(
    stage: str,
    data: str | Path,
    cfg: TrainConfig,
    negatives: str | Path | None = None,
    model: str | Path | None = None,
    *,
    teacher: str | Path | None = None,
    split: str = "train",
) -> TrainingSet:
    """The examples of `stage` from its table folder (pairs for nli/caption, M-BEIR tables for mbeir,
    hardneg and distill); hardneg adds `cfg.hard_negatives` rows of the mined folder `negatives`, which
    must have been mined with `model` (the stage's init) on these tables; distill reads the `teacher`
    folder `umarvel rerank score` wrote; rerank pairs the `split` queries with draws from the mined
    folder `negatives` (mined with the retriever, not with the reranker's base: no model check)."""
    if stage in ("nli", "caption"):
        return PairsSet(data, stage, cfg.hard_negatives)
    if stage == "hardneg":
        from umarvel_cli.training.hardneg_data import HardNegativeSet  # it builds on MbeirSet, here

        if negatives is None or model is None:
            raise UmarvelError("stage hardneg needs --negatives", field="--negatives",
                               expected="the folder `umarvel mine` wrote")  # fmt: skip
        return HardNegativeSet(data, negatives, model, cfg.hard_negatives, cfg.instruction, cfg.seed)
    if stage == "rerank":
        from umarvel_cli.training.rerank_data import RerankSet  # it builds on MbeirSet, here

        if negatives is None:
            raise UmarvelError("stage rerank needs --negatives", field="--negatives",
                               expected="the folder `umarvel mine` wrote")  # fmt: skip
        return RerankSet(data, negatives, cfg.instruction, cfg.seed, split, cfg.rerank_random_negatives)
    if stage == "distill":
        from umarvel_cli.training.distill_data import DistillSet  # it builds on MbeirSet, here

        if teacher is None:
            raise UmarvelError("stage distill needs --teacher", field="--teacher",
                               expected="the folder `umarvel rerank score` wrote")  # fmt: skip
        return DistillSet(data, teacher, cfg)
    return MbeirSet(data, cfg.hard_negatives, cfg.instruction, cfg.seed)
