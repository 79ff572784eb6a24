"""Evaluation instructions: a deterministic choice per query (the released code used unseeded
`random.choice`, bug B19), keyed by (dataset id, query modality, candidate modality).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from umarvel_cli.errors import UmarvelError

MODES = ("first", "seeded", "none")
Key = tuple[int, str, str]


def dataset_id_from_qid(qid: str) -> int | None:
    """M-BEIR ids are "{dataset_id}:{n}"; None when the id has no such prefix."""
    head, sep, _ = qid.partition(":")
    return int(head) if sep and head.isdigit() else None


def stable_index(qid: str, n: int, seed: int = 0) -> int:
    """Index in [0, n) from a hash of the qid: the same on every machine and run."""
    digest = hashlib.sha256(f"{seed}\0{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


@dataclass
class InstructionTable:
    """Prompts by (dataset_id, query modality, candidate modality)."""

    prompts: dict[Key, list[str]]

    @classmethod
    def from_tables(cls, root: str | Path) -> InstructionTable:
        """Read the prepared `instructions` table (empty when the folder has none)."""
        from umarvel_cli.artifacts.shards import list_shards, read_table

        if not list_shards(root, "instructions"):
            return cls({})
        table = read_table(root, "instructions").to_pylist()
        prompts: dict[Key, list[str]] = {}
        for row in table:
            key = (int(row["dataset_id"]), row["query_modality"], row["cand_modality"])
            prompts[key] = [p for p in row["prompts"] if p and p.strip()]
        return cls(prompts)

    def __bool__(self) -> bool:
        return bool(self.prompts)

    def choose(
        self,
        qid: str,
        query_modality: str,
        cand_modality: str,
        dataset_id: int | None = None,
        mode: str = "first",
        seed: int = 0,
    ) -> str | None:
        """The instruction for one query: `first` prompt, `seeded` by the qid, or `none`."""
        if mode not in MODES:
            raise UmarvelError(
                f"unknown instruction mode {mode!r}", field="instruction_mode", expected=" | ".join(MODES)
            )
        if mode == "none" or not self.prompts:
            return None
        ds = dataset_id if dataset_id is not None else dataset_id_from_qid(qid)
        if ds is None:
            raise UmarvelError(f"query {qid!r} has no dataset id", field="qid", expected='"{dataset_id}:{n}"')
        options = self.prompts.get((ds, query_modality, cand_modality))
        if options == []:  # a row without prompts: queries of that key take no instruction
            return None
        if not options:
            raise UmarvelError(
                f"no instruction for dataset {ds}, {query_modality} -> {cand_modality} (query {qid})",
                field="instructions",
                expected="a row of the instructions table with that key",
            )
        return options[0] if mode == "first" else options[stable_index(qid, len(options), seed)]
