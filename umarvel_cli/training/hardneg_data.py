"""Training examples of the hard-negative stage: M-BEIR train queries with the negatives `umarvel mine` kept.

Each example is the mbeir stage's (query with instruction, one positive) plus exactly k mined
negatives, so every rank gathers blocks of one shape. A row short of k repeats its own negatives;
a row with none takes k of the negatives mined for other queries of its task (same pool and
modality, never one of its positives), drawn from a generator seeded by (seed, epoch, index).
Keys are content keys (`src_content`, else text + image), so the loss also masks a negative that
duplicates a positive under another id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import fingerprint, read_table
from umarvel_cli.artifacts.manifest import require_manifest
from umarvel_cli.artifacts.shards import table_dir
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.folder import resolve_model_dir  # the rule `umarvel mine` applied to --model
from umarvel_cli.training.data import MbeirSet, TrainExample, candidate_record

MINE_STAGE = "mine"
NEGATIVE_COLUMNS = ("neg_ids", "top_neg_ids")  # filtered (default) or the unfiltered ablation


def check_mined(
    negatives: str | Path, data: str | Path, model: str | Path | None, split: str = "train"
) -> None:
    """The mined folder is finished, mined on `split` of these tables (and with `model`, when given)."""
    manifest = require_manifest(negatives, MINE_STAGE)
    if manifest.params.get("split") != split:
        raise UmarvelError(
            f"mined on split {manifest.params.get('split')!r}",
            file=negatives,
            expected=f"negatives of the {split} split",
        )
    if manifest.inputs.get("data") != fingerprint(data):
        raise UmarvelError(
            "negatives were mined from other tables", file=negatives, field="--data",
            expected=f"the --data given to `umarvel mine` ({manifest.extra.get('data')})",
        )  # fmt: skip
    if model is not None and manifest.inputs.get("model") != fingerprint(resolve_model_dir(model)):
        raise UmarvelError(
            "negatives were mined with another model", file=negatives, field="--model",
            expected=f"the --model given to `umarvel mine` ({manifest.extra.get('model')})",
        )  # fmt: skip


def content_keys(data: str | Path, dids: set[str]) -> dict[str, dict]:
    """did -> its candidate row plus `key` (src_content, else text + image)."""
    cands = read_table(data, "candidates", ["did", "modality", "text", "image", "src_content"])
    cands = cands.filter(pc.is_in(cands["did"], value_set=pa.array(sorted(dids), pa.string())))
    rows = {}
    for r in cands.to_pylist():
        r["key"] = f"s:{r['src_content']}" if r["src_content"] else f"c:{r['text']}\x00{r['image']}"
        rows[r["did"]] = r
    return rows


class HardNegativeSet:
    """The mbeir examples with k mined negatives each (module docstring)."""

    def __init__(
        self,
        data: str | Path,
        negatives: str | Path,
        model: str | Path,
        hard_negatives: int,
        instruction: str,
        seed: int,
        column: str = "neg_ids",
    ) -> None:
        if hard_negatives < 1:
            raise UmarvelError("the hard-negative stage needs hard_negatives >= 1", field="hard_negatives")
        if column not in NEGATIVE_COLUMNS:
            raise UmarvelError(f"unknown negatives column {column!r}", expected=" | ".join(NEGATIVE_COLUMNS))
        check_mined(negatives, data, model)
        self.base = MbeirSet(data, 0, instruction, seed)
        self.k, self.seed = hard_negatives, seed
        mined = read_table(negatives, "mined", ["qid", "task", column])
        negs = dict(zip(mined["qid"].to_pylist(), mined[column].to_pylist(), strict=True))
        qids = [r["qid"] for r in self.base.rows]
        missing_q = [q for q in qids if q not in negs]
        if missing_q or len(negs) != len(qids):
            extra = sorted(set(negs) - set(qids))
            what = (
                f"train query {missing_q[0]!r} has no mined row"
                if missing_q
                else f"mined query {extra[0]!r} is not a train query"
            )
            raise UmarvelError(
                what, file=table_dir(negatives, "mined"), field="qid", expected="rows of these tables"
            )
        self.negs = [negs[q] for q in qids]
        needed = {d for row in self.negs for d in row} | {d for r in self.base.rows for d in r["pos"]}
        self.cands = content_keys(data, needed)
        unknown = sorted(needed - set(self.cands))
        if unknown:
            raise UmarvelError(
                f"mined negative {unknown[0]!r} is not in the candidates table",
                file=table_dir(negatives, "mined"), field=column, expected="ids of these tables",
            )  # fmt: skip
        tasks = mined["task"].to_pylist()
        task_of = dict(zip(mined["qid"].to_pylist(), tasks, strict=True))
        by_task: dict[str, set[str]] = {}
        for q, row in zip(qids, self.negs, strict=True):
            by_task.setdefault(task_of[q], set()).update(row)
        everything = sorted({d for s in by_task.values() for d in s})
        self.fallback = [sorted(by_task.get(task_of[q], set())) or everything for q in qids]
        if not everything:
            raise UmarvelError(
                "the mined table holds no negatives at all",
                file=negatives,
                expected="a mining run that kept some",
            )
        self.groups = self.base.groups

    def __len__(self) -> int:
        return len(self.base)

    def negatives_of(self, index: int, epoch: int) -> list[str]:
        """Exactly k dids: the row's own (repeated when short), or k drawn from its task's negatives."""
        own = self.negs[index]
        if own:
            return [own[i % len(own)] for i in range(self.k)]
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        pos_keys = {self.cands[d]["key"] for d in self.base.rows[index]["pos"]}
        pool = [d for d in self.fallback[index] if self.cands[d]["key"] not in pos_keys]
        if not pool:
            raise UmarvelError(f"no negative can be drawn for query {self.base.rows[index]['qid']!r}")
        return [pool[int(i)] for i in rng.integers(len(pool), size=self.k)]

    def example(self, index: int, epoch: int) -> TrainExample:
        ex = self.base.example(index, epoch)
        negs = self.negatives_of(index, epoch)
        ex.negatives = [self._record(d) for d in negs]
        ex.pos_key = self.cands[ex.pos_key]["key"]
        ex.neg_keys = [self.cands[d]["key"] for d in negs]
        ex.query_pos_keys = [self.cands[d]["key"] for d in self.base.rows[index]["pos"]]
        return ex

    def _record(self, did: str) -> Record:
        return candidate_record(self.base.root, did, self.cands[did])

    def describe(self) -> dict[str, int]:
        short = sum(1 for row in self.negs if 0 < len(row) < self.k)
        return {**self.base.describe(), "hard_negatives": self.k, "short": short,
                "without_negatives": sum(1 for row in self.negs if not row)}  # fmt: skip
