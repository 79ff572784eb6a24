"""What `embed` encodes: the queries of a split or the candidates of a pool, as formatter Records.

Order is the table's order (deterministic), so a killed run resumes at the same item. Query
instructions are chosen deterministically from the `instructions` table.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.shards import list_shards, read_table, table_dir
from umarvel_cli.data.instructions import InstructionTable
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError

SIDES = ("queries", "candidates")


def images_root(data: Path) -> Path:
    """The folder image paths are relative to (the tables' manifest `extra.images_root`)."""
    manifest = read_manifest(data)
    root = manifest.extra.get("images_root") if manifest is not None else None
    return Path(root) if root else data


def _image_path(root: Path, rel: str | None) -> Path | None:
    from umarvel_cli.artifacts.paths import resolve_image

    return resolve_image(root, rel) if rel else None


def _cand_modalities() -> dict[int, str]:
    """Candidate modality by task type: M-BEIR's, plus the zero-shot suite's own (text -> video)."""
    from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
    from umarvel_cli.data.zeroshot import load_zeroshot_suite

    zeroshot = {
        t.task_id: t.cand_modality for b in load_zeroshot_suite().benchmarks.values() for t in b.tasks
    }
    return {**zeroshot, **{task: mods[1] for task, mods in load_mbeir_spec().task_modalities.items()}}


def query_records(data: Path, split: str, instruction_mode: str = "first") -> list[Record]:
    """Queries of `split`, each with its deterministic instruction (when the data has instructions)."""
    table = read_table(
        data, "queries", columns=["qid", "split", "task_id", "dataset_id", "modality", "text", "image"]
    )
    table = table.filter(pc.equal(table["split"], split))
    if table.num_rows == 0:
        raise UmarvelError(f"no queries of split {split!r}", file=table_dir(data, "queries"), field="split")
    root = images_root(data)
    instructions = InstructionTable.from_tables(data) if instruction_mode != "none" else InstructionTable({})
    cand_mod = _cand_modalities() if instructions else {}
    out = []
    for row in table.to_pylist():
        instruction = None
        if instructions:
            instruction = instructions.choose(
                row["qid"],
                row["modality"],
                cand_mod.get(int(row["task_id"]), ""),
                dataset_id=int(row["dataset_id"]),
                mode=instruction_mode,
            )
        out.append(
            Record(
                id=row["qid"],
                text=row["text"],
                image=_image_path(root, row["image"]),
                instruction=instruction,
                modality=row["modality"],
            )
        )
    return out


def candidate_records(data: Path, pool: str | None = None, ids: Iterable[str] | None = None) -> list[Record]:
    """Candidates of `pool` (from the `pools` table), or all candidates; only `ids` when given."""
    table = read_table(data, "candidates", columns=["did", "modality", "text", "image"])
    if ids is not None:
        table = table.filter(pc.is_in(table["did"], value_set=pa.array(sorted(set(ids)), type=pa.string())))
    if pool is not None:
        if not list_shards(data, "pools"):
            raise UmarvelError("no 'pools' table", file=table_dir(data, "pools"), field="--pool-name")
        pools = read_table(data, "pools", filters=[("pool", "=", pool)])
        if pools.num_rows == 0:
            raise UmarvelError(f"unknown pool {pool!r}", file=table_dir(data, "pools"), field="--pool-name")
        table = table.filter(pc.is_in(table["did"], value_set=pools["did"]))
    root = images_root(data)
    return [
        Record(id=r["did"], text=r["text"], image=_image_path(root, r["image"]), modality=r["modality"])
        for r in table.to_pylist()
    ]


def load_records(
    data: Path, split: str, side: str, pool: str | None = None, instruction_mode: str = "first"
) -> list[Record]:
    if side not in SIDES:
        raise UmarvelError(f"unknown side {side!r}", field="--side", expected=" | ".join(SIDES))
    if side == "queries":
        return query_records(data, split, instruction_mode)
    return candidate_records(data, pool)
