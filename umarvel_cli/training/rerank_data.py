"""Training examples of the reranker stage: per query its positive ("Yes") and one mined negative ("No").

The query (with its instruction) is the mbeir stage's; the positive and the negative are the seeded
draws of `reranking.train_pairs.draw_pairs` (a positive from the query's positives, a negative from
its mined list minus the positives: the retriever's local top-k, column `top_neg_ids`, as released;
or, for the `rerank_random_negatives` share, another training query's positive of the same task),
so a resumed run draws the same pairs. The mined folder must be a finished `umarvel mine` run on
the same split of these tables; it was mined with the retriever, not with the reranker's base, so
no model is checked. A query with no negative left is not trained on and is counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.shards import table_dir
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.reranking.train_pairs import NO, YES, draw_pairs
from umarvel_cli.training.data import MbeirSet, TrainExample, candidate_record
from umarvel_cli.training.hardneg_data import check_mined, content_keys

RERANK_COLUMN = "top_neg_ids"  # the retriever's top-k minus the positives, unfiltered (spec 6.1)


class RerankSet:
    """The queries of `split` with one positive and one mined negative each (module docstring)."""

    def __init__(
        self,
        data: str | Path,
        negatives: str | Path,
        instruction: str,
        seed: int,
        split: str = "train",
        random_share: float = 0.0,
    ) -> None:
        check_mined(negatives, data, None, split)
        base = MbeirSet(data, 0, instruction, seed, split)
        mined = read_table(negatives, "mined", ["qid", RERANK_COLUMN])
        negs = dict(zip(mined["qid"].to_pylist(), mined[RERANK_COLUMN].to_pylist(), strict=True))
        unknown = next((q for q in negs if q not in {r["qid"] for r in base.rows}), None)
        if unknown is not None:
            raise UmarvelError(
                f"mined query {unknown!r} is not a {split} query of these tables",
                file=table_dir(negatives, "mined"), field="qid", expected="rows of these tables",
            )  # fmt: skip
        self.base, self.seed = base, seed
        self.positives = {r["qid"]: list(r["pos"]) for r in base.rows}
        self.mined = {q: list(row or []) for q, row in negs.items()}
        self.random_share = random_share
        self.random_pool = task_positives(base.rows, base.groups) if random_share > 0 else None
        _, skipped = draw_pairs([r["qid"] for r in base.rows], self.positives, self.mined, seed)
        self.skipped = skipped["no_positive"] + skipped["no_negative"]
        kept = [i for i, r in enumerate(base.rows) if draw_pairs([r["qid"]], self.positives, self.mined)[0]]
        if not kept:
            raise UmarvelError(
                "no query has a mined negative left after removing its positives",
                file=negatives,
                expected="a mining run that kept some",
            )
        self.index = kept
        self.groups = base.groups[kept]
        needed = {d for q in self.mined for d in self.mined[q]} | {
            d for p in self.positives.values() for d in p
        }  # the random pool is made of positives: all in here
        self.cands = content_keys(data, needed)
        missing = sorted(needed - set(self.cands))
        if missing:
            raise UmarvelError(
                f"mined negative {missing[0]!r} is not in the candidates table",
                file=table_dir(negatives, "mined"), field=RERANK_COLUMN, expected="ids of these tables",
            )  # fmt: skip

    def __len__(self) -> int:
        return len(self.index)

    def example(self, index: int, epoch: int) -> TrainExample:
        row = self.index[index]
        ex = self.base.example(row, epoch)
        qid = self.base.rows[row]["qid"]
        pairs, _ = draw_pairs(
            [qid], self.positives, self.mined, self.seed, epoch, self.random_share, self.random_pool
        )
        answer = {p.answer: p.did for p in pairs}
        ex.positive, ex.negatives = self._record(answer[YES]), [self._record(answer[NO])]
        ex.pos_key, ex.neg_keys = answer[YES], [answer[NO]]
        return ex

    def _record(self, did: str) -> Record:
        return candidate_record(self.base.root, did, self.cands[did])

    def describe(self) -> dict[str, int]:
        return {**self.base.describe(), "examples": len(self.index), "skipped_queries": self.skipped}


def task_positives(rows: list[dict], groups: np.ndarray) -> dict[str, list[str]]:
    """Per query, every positive of its task's queries (one shared list per task)."""
    by_task: dict[int, list[str]] = {}
    for row, g in zip(rows, groups, strict=True):
        by_task.setdefault(int(g), []).extend(row["pos"])
    pools = {g: list(dict.fromkeys(ids)) for g, ids in by_task.items()}
    return {row["qid"]: pools[int(g)] for row, g in zip(rows, groups, strict=True)}
