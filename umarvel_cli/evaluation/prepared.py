"""What evaluation needs from the prepared M-BEIR tables (`umarvel prepare mbeir` output) for a split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import Manifest, read_manifest, read_table
from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.data.mbeir.tasks import MBEIRSpec
from umarvel_cli.errors import UmarvelError

MBEIR_STAGE = "prepare-mbeir"


@dataclass
class PreparedSplit:
    data: Path
    split: str
    manifest: Manifest
    qids: list[str]
    task_of: dict[str, str]  # qid -> task stem (e.g. "mscoco_task0")
    qrels: dict[str, dict[str, int]]  # qid -> {did: relevance}
    tasks: list[str]  # tasks present, in the spec's report order (unknown tasks last, sorted)

    @property
    def is_mbeir(self) -> bool:
        """Real M-BEIR data (published numbers are comparable), not the demo tables."""
        return self.manifest.stage == MBEIR_STAGE and not is_demo_tree(self.manifest.extra.get("images_root"))

    def qids_of(self, task: str) -> list[str]:
        return [q for q in self.qids if self.task_of[q] == task]


def is_demo_tree(root: str | None) -> bool:
    """The M-BEIR-shaped folder written by `umarvel prepare demo` (its manifest) or `generate_demo`
    (its README), which `prepare mbeir` reads like the real thing."""
    if not root:
        return False
    from umarvel_cli.data.demo.generate import STAGE as DEMO_STAGE

    manifest = read_manifest(root) if Path(root).is_dir() else None
    if manifest is not None and manifest.stage == DEMO_STAGE:
        return True
    readme = Path(root) / "README.txt"
    return readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(
        "umarvel demo data"
    )


def task_stem(spec: MBEIRSpec, dataset_id: int, task_id: int) -> str:
    name = spec.datasets.get(dataset_id, f"dataset{dataset_id}")
    return f"{name}_task{task_id}"


def load_split(data: str | Path, split: str, spec: MBEIRSpec) -> PreparedSplit:
    data = Path(data)
    manifest = require_complete(data, None, "--data")
    queries = read_table(data, "queries", columns=["qid", "split", "task_id", "dataset_id"])
    queries = queries.filter(pc.equal(queries.column("split"), split))
    if queries.num_rows == 0:
        raise UmarvelError(
            f"no {split} queries in the prepared tables", file=data, expected=f"data with a {split} split"
        )
    qids = queries.column("qid").to_pylist()
    if len(set(qids)) != len(qids):
        raise UmarvelError(f"duplicate {split} query ids in the queries table", file=data, field="qid")
    stems = [
        task_stem(spec, d, t)
        for d, t in zip(
            queries.column("dataset_id").to_pylist(), queries.column("task_id").to_pylist(), strict=True
        )
    ]
    task_of = dict(zip(qids, stems, strict=True))
    qrels_t = read_table(data, "qrels", columns=["qid", "did", "relevance", "split"])
    qrels_t = qrels_t.filter(pc.equal(qrels_t.column("split"), split))
    qrels: dict[str, dict[str, int]] = {}
    for q, d, r in zip(
        qrels_t.column("qid").to_pylist(),
        qrels_t.column("did").to_pylist(),
        qrels_t.column("relevance").to_pylist(),
        strict=True,
    ):
        qrels.setdefault(q, {})[d] = r
    present = set(stems)
    tasks = [t for t in spec.order if t in present] + sorted(present - set(spec.order))
    return PreparedSplit(data, split, manifest, qids, task_of, qrels, tasks)


def candidate_ids(data: str | Path) -> pa.Array:
    return read_table(data, "candidates", columns=["did"]).column("did").combine_chunks()


def pool_ids(data: str | Path, pool: str) -> pa.Array:
    t = read_table(data, "pools", columns=["pool", "did"])
    return t.filter(pc.equal(t.column("pool"), pool)).column("did").combine_chunks()


def ids_by_modality(data: str | Path) -> dict[str, pa.Array]:
    """Candidate ids per modality ("text", "image", "image,text")."""
    t = read_table(data, "candidates", columns=["did", "modality"])
    mods = t.column("modality")
    return {
        m: t.column("did").filter(pc.equal(mods, m)).combine_chunks() for m in pc.unique(mods).to_pylist()
    }
