"""`umarvel prepare zeroshot`: one benchmark's release -> queries, candidates, qrels, galleries tables.

The whole release is read and checked before anything is written (a bad annotation or a missing
image/video leaves OUT untouched); then the tables and the manifest (last) are written. Image and
video paths stay relative to --root (`manifest.extra.images_root`), like M-BEIR's tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from umarvel_cli.artifacts import ShardWriter, fingerprint, finish_stage, plan_stage, read_manifest
from umarvel_cli.artifacts.schemas import TABLES
from umarvel_cli.console import info
from umarvel_cli.data.zeroshot.demo import DEMO_MARKER
from umarvel_cli.data.zeroshot.genecis import CROPS_DIR, write_crop
from umarvel_cli.data.zeroshot.records import ZeroShotRows
from umarvel_cli.data.zeroshot.registry import READERS
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec, load_zeroshot_suite
from umarvel_cli.errors import UmarvelError

STAGE = "prepare-zeroshot"


RELEASE_COPY = "release"


def _copy_release_images(out: Path, root: Path, rows: ZeroShotRows) -> Path:
    """Derived images live in OUT, so OUT becomes the one images root: the release images the tables
    name are hard-linked (copied across file systems) to OUT/release/, and their paths rewritten.
    A link into the release would leave the root, which image resolution refuses (no symlinks out)."""
    import os
    import shutil

    copies: dict[str, str] = {}
    for table in (rows.queries, rows.candidates.values()):
        for row in table:
            rel = row["image"]
            if not rel or rel.startswith(f"{CROPS_DIR}/"):
                continue
            if rel not in copies:
                target = out / RELEASE_COPY / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                source = root / rel
                if not target.exists():
                    try:
                        os.link(source, target)
                    except OSError:
                        shutil.copyfile(source, target)
                copies[rel] = f"{RELEASE_COPY}/{rel}"
            row["image"] = copies[rel]
    return out.resolve()


def task_pools(spec: BenchmarkSpec, rows: ZeroShotRows) -> list[dict[str, str]]:
    """One pool per task, named after it, for `embed --pool` / `eval zeroshot --model`: a ranking task
    searches every candidate of its target modality; a gallery or choice task needs only the union of
    its queries' galleries."""
    out: list[dict[str, str]] = []
    for task in spec.tasks:
        if task.protocol == "ranking":
            dids = [d for d, c in rows.candidates.items() if c["modality"] == task.cand_modality]
        else:
            qids = {q["qid"] for q in rows.queries if q["dataset_id"] == task.dataset_id}
            dids = list(dict.fromkeys(g["did"] for g in rows.galleries if g["qid"] in qids))
        out += [{"pool": task.name, "did": d} for d in dids]
    return out


def task_instructions(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    """One row per task, keyed like M-BEIR's (dataset_id, query modality, candidate modality), so the
    embedder gives each query its task's instruction (none where the paper's code uses none)."""
    return [
        {
            "dataset_id": t.dataset_id,
            "dataset_name": f"{spec.display} {t.name}",
            "query_modality": t.query_modality,
            "cand_modality": t.cand_modality,
            "prompts": [t.instruction] if t.instruction else [],
        }
        for t in spec.tasks
    ]


def prepare_zeroshot(
    benchmark: str, root: Path, out: Path, split: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Returns the manifest's counts. Up to date when the release and options did not change."""
    spec = load_zeroshot_suite().get(benchmark)
    root, out = Path(root), Path(out)
    split = split or spec.default_split
    if split not in spec.splits:
        raise UmarvelError(
            f"unknown split {split!r} for {benchmark}", field="--split", expected=" or ".join(spec.splits)
        )
    if not root.is_dir():
        raise UmarvelError("release folder not found", file=root, field="--root")
    params = {"benchmark": benchmark, "split": split}
    inputs = {"root": fingerprint(root)}
    manifest = read_manifest(out) if out.is_dir() else None
    if (
        manifest
        and manifest.stage == STAGE
        and manifest.params == params
        and manifest.inputs == inputs
        and not force
    ):
        info(f"prepare zeroshot: {out} is up to date")
        return dict(manifest.counts)

    rows = READERS[spec.reader](root, spec, split)
    plan = plan_stage(out, STAGE, params, inputs, force)
    images_root = root.resolve()
    if rows.crops:
        images_root = _copy_release_images(out, root, rows)
        (out / CROPS_DIR).mkdir(exist_ok=True)
        for crop in rows.crops:
            write_crop(crop, out / CROPS_DIR)
    tables = {
        "queries": rows.queries,
        "candidates": list(rows.candidates.values()),
        "pools": task_pools(spec, rows),
        "qrels": rows.qrels,
        "galleries": rows.galleries,
        "instructions": task_instructions(spec),
    }
    for name, data in tables.items():
        with ShardWriter(out, name, TABLES[name]) as w:
            w.write_rows(data)
    counts = {name: len(data) for name, data in tables.items()}
    counts["crops"] = len(rows.crops)
    tasks = {t.name: sum(1 for q in rows.queries if q["dataset_id"] == t.dataset_id) for t in spec.tasks}
    extra = {
        "benchmark": benchmark,
        "display": spec.display,
        "split": split,
        "images_root": str(images_root),
        "source": spec.source,
        "queries_per_task": tasks,
        "synthetic": (root / DEMO_MARKER).is_file(),
    }
    finish_stage(plan, counts, extra)
    info(f"prepare zeroshot: {spec.display} {split}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return counts
