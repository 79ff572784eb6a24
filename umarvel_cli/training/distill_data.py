"""Training examples of the distillation stage: the teacher table's queries with their fused top-k lists.

One example per query of the teacher table (the queries `rerank score --sample-fraction` drew): the
mbeir stage's query (with instruction) and one positive, plus its first `distill_topk` candidates by
F = cosine + w(task)·P(Yes) (`reranking.distill_targets`), positives included as released, and their
teacher scores F/2. The teacher table must be a finished `rerank score` output made from these
tables, every score finite, every query a train query and every candidate in the tables; otherwise
one line, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from umarvel_cli.artifacts import fingerprint, read_manifest, read_table
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.prepared import task_stem
from umarvel_cli.reranking.distill_targets import distill_lists
from umarvel_cli.reranking.fusion import check_weight
from umarvel_cli.reranking.teacher import check_known, read_teacher, teacher_folder
from umarvel_cli.reranking.teacher_quality import teacher_quality
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import MbeirSet, TrainExample, candidate_record
from umarvel_cli.training.hardneg_data import content_keys


@dataclass
class DistillExample(TrainExample):
    """`negatives` hold the query's teacher list (best fused first), `teacher_scores` its F/2."""

    teacher_scores: list[float] = field(default_factory=list)


def check_teacher(teacher: str | Path, data: str | Path) -> Path:
    """The finished `rerank score` folder at `teacher`, made from the tables `data` (manifest only)."""
    folder = teacher_folder(teacher)
    manifest = read_manifest(folder)
    made_from = manifest.inputs.get("data") if manifest is not None else None
    if made_from is not None and made_from != fingerprint(data):
        raise UmarvelError(
            "teacher scores were made from other tables", file=folder, field="--data",
            expected="the --data given to `umarvel rerank score`",
        )  # fmt: skip
    return folder


class DistillSet:
    """The teacher's queries, each with its top-k list and teacher scores (module docstring)."""

    def __init__(self, data: str | Path, teacher: str | Path, cfg: TrainConfig) -> None:
        folder = check_teacher(teacher, data)
        weights = dict(cfg.fusion_weights or {"default": 1.0})
        check_weight(weights)
        table = read_teacher(folder)
        if table.num_rows == 0:
            raise UmarvelError("the teacher table is empty", file=folder, expected="scored pairs")
        self.base = MbeirSet(data, 0, cfg.instruction, cfg.seed)
        train_qids = [r["qid"] for r in self.base.rows]
        dids = read_table(data, "candidates", ["did"]).column("did").combine_chunks()
        check_known(table, pa.array(train_qids, pa.string()), dids, folder, "the train queries of --data")
        spec = load_mbeir_spec()
        task_of = {r["qid"]: task_stem(spec, r["dataset_id"], r["task_id"]) for r in self.base.rows}
        lists = distill_lists(table, task_of, weights, cfg.distill_topk)
        positives = {r["qid"]: set(r["pos"]) for r in self.base.rows}
        self.quality = teacher_quality(table, positives, task_of, weights)
        self.rows = [i for i, q in enumerate(train_qids) if q in lists]  # table order: deterministic
        self.lists = [lists[train_qids[i]] for i in self.rows]
        needed = {d for lst in self.lists for d in lst.dids}
        needed |= {d for i in self.rows for d in self.base.rows[i]["pos"]}
        self.cands = content_keys(data, needed)
        self.groups = self.base.groups[np.array(self.rows, dtype=np.int64)]
        self.topk = cfg.distill_topk

    def __len__(self) -> int:
        return len(self.rows)

    def example(self, index: int, epoch: int) -> DistillExample:
        row = self.rows[index]
        ex = self.base.example(row, epoch)
        lst = self.lists[index]
        return DistillExample(
            query=ex.query,
            positive=ex.positive,
            negatives=[self._record(d) for d in lst.dids],
            pos_key=self.cands[ex.pos_key]["key"],
            neg_keys=[self.cands[d]["key"] for d in lst.dids],
            query_pos_keys=[self.cands[d]["key"] for d in self.base.rows[row]["pos"]],
            teacher_scores=[float(s) for s in lst.teacher_scores],
        )

    def _record(self, did: str) -> Record:
        return candidate_record(self.base.root, did, self.cands[did])

    def describe(self) -> dict[str, Any]:
        sizes = [len(lst.dids) for lst in self.lists]
        return {
            "examples": len(self.rows),
            "train_queries": len(self.base),
            "tasks": len(set(self.groups.tolist())),
            "topk": self.topk,
            "short_lists": sum(1 for n in sizes if n < self.topk),
            "candidates_used": len({d for lst in self.lists for d in lst.dids}),
            "teacher_quality": self.quality.as_dict(),
        }
