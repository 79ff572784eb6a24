"""Which files of an M-BEIR folder a prepare reads, in a fixed order, all named by data_manifests/mbeir.yaml.

Train queries and qrels come one file per dataset; val/test ones one file per task; local pools one per
task except MSCOCO's split-specific pools (P9); the three global pools are optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from umarvel_cli.data.mbeir.tasks import MBEIRSpec, TaskSpec
from umarvel_cli.errors import UmarvelError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SourceFile:
    """One input file; `tasks` maps each task id it may hold to the (dataset, task) stem it reports under."""

    kind: str  # queries | qrels | pool | instructions
    path: Path
    rel: str
    split: str | None = None
    dataset_id: int | None = None
    tasks: tuple[tuple[int, str], ...] = ()
    pool: str | None = None  # the pool name (pool files) or the pool positives are checked against

    def stem_of(self, task_id: int) -> str | None:
        for tid, stem in self.tasks:
            if tid == task_id:
                return stem
        return None


@dataclass(frozen=True)
class MBEIRInputs:
    root: Path
    instructions: SourceFile
    pools: tuple[SourceFile, ...]
    queries: tuple[SourceFile, ...]
    qrels: tuple[SourceFile, ...]
    notes: tuple[str, ...]
    absent_tasks: tuple[str, ...] = ()  # tasks of the release whose files are not all there (--tasks auto)

    def all_files(self) -> list[SourceFile]:
        return [self.instructions, *self.pools, *self.queries, *self.qrels]


def global_pool_of(spec: MBEIRSpec, split: str) -> str | None:
    """The global pool named for a split (`union_train` for train), if the spec lists one."""
    for name in spec.global_pools:
        if name.rsplit("_", 1)[-1] == split:
            return name
    return None


def _source(root: Path, kind: str, rel: str, **kw) -> SourceFile:
    return SourceFile(kind=kind, path=root / rel, rel=rel, **kw)


def _require(files: list[SourceFile]) -> None:
    missing = [f for f in files if not f.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UmarvelError(
            f"missing M-BEIR {missing[0].kind} file{more}",
            file=missing[0].path,
            expected="the M-BEIR folder layout of docs/mbeir.md (pass --split to read fewer splits, "
            "--tasks auto to read the tasks present)",
        )
    empty = [f for f in files if f.kind in ("queries", "pool", "instructions") and f.path.stat().st_size == 0]
    if empty:
        raise UmarvelError(
            f"empty M-BEIR {empty[0].kind} file (0 bytes)", file=empty[0].path, expected="a complete copy"
        )


def task_files(root: Path, spec: MBEIRSpec, task: TaskSpec, splits: tuple[str, ...]) -> list[Path]:
    """The files a task needs for `splits`: its queries, qrels and local pool (train: its dataset's files)."""
    paths = []
    for split in splits:
        if split == "train":
            dataset = spec.datasets[task.dataset_id]
            paths += [root / spec.path(k, dataset=dataset) for k in ("train_queries", "train_qrels")]
        else:
            paths += [
                root / spec.path(k, stem=task.stem, split=split) for k in ("eval_queries", "eval_qrels")
            ]
            paths.append(root / spec.path("local_pool", pool=task.pool(split)))
    return paths


def select_tasks(
    root: Path, spec: MBEIRSpec, splits: tuple[str, ...], tasks: str | tuple[str, ...]
) -> tuple[list[TaskSpec], list[str]]:
    """(tasks to read, absent tasks). `auto`: every task whose files are all there, the others absent;
    `all`: the full release (a missing file is an error); stems: those tasks, each required."""
    if tasks == "all":
        return list(spec.tasks), []
    if tasks == "auto":
        present = [t for t in spec.tasks if all(p.is_file() for p in task_files(root, spec, t, splits))]
        if not present:
            raise UmarvelError(
                "no M-BEIR task has its query, qrels and pool files here",
                file=root,
                expected=f"the layout of docs/mbeir.md, e.g. {spec.path('eval_queries', stem=spec.tasks[0].stem, split=splits[-1])}",
            )
        return present, [t.stem for t in spec.tasks if t not in present]
    known = {t.stem for t in spec.tasks}
    unknown = [stem for stem in tasks if stem not in known]
    if unknown or not tasks:
        raise UmarvelError(
            f"unknown task {unknown[0]!r}" if unknown else "no task given",
            field="--tasks",
            expected="auto, all, or a comma list of task stems: " + ", ".join(spec.order),
        )
    return [t for t in spec.tasks if t.stem in tasks], []


def plan_inputs(
    root: Path, spec: MBEIRSpec, splits: tuple[str, ...], tasks: str | tuple[str, ...] = "auto"
) -> MBEIRInputs:
    """List the files to read for `splits` and `tasks` (see `select_tasks`); raises on a missing required
    file, notes missing global pools and absent tasks."""
    if not root.is_dir():
        raise UmarvelError("M-BEIR root is not a folder", file=root, field="--root")
    notes: list[str] = []
    selected, absent = select_tasks(root, spec, splits, tasks)
    if absent:
        notes.append(
            f"{len(absent)} of {len(spec.tasks)} tasks absent (files missing), not read: {', '.join(absent)}"
        )
    eval_splits = [s for s in splits if s != "train"]

    pools: list[SourceFile] = []
    seen: set[str] = set()
    for split in eval_splits:
        for task in selected:
            name = task.pool(split)
            if name not in seen:
                seen.add(name)
                pools.append(_source(root, "pool", spec.path("local_pool", pool=name), pool=name))
    _require(pools)
    for split in splits:
        name = global_pool_of(spec, split)
        if name is None or name in seen:
            continue
        seen.add(name)
        source = _source(root, "pool", spec.path("global_pool", pool=name), pool=name)
        if source.path.is_file():
            pools.append(source)
        else:
            notes.append(f"global pool {name} not found ({source.rel}); skipped")

    queries: list[SourceFile] = []
    qrels: list[SourceFile] = []
    for split in splits:
        if split == "train":
            train_pool = global_pool_of(spec, "train")
            for dataset_id, dataset in spec.datasets.items():
                tasks = tuple((t.task_id, t.stem) for t in spec.tasks if t.dataset_id == dataset_id)
                if not any(t.dataset_id == dataset_id for t in selected):
                    continue  # a dataset's train file is read whole when any of its tasks is selected
                common = dict(split=split, dataset_id=dataset_id, tasks=tasks, pool=train_pool)
                queries.append(
                    _source(root, "queries", spec.path("train_queries", dataset=dataset), **common)
                )
                qrels.append(_source(root, "qrels", spec.path("train_qrels", dataset=dataset), **common))
        else:
            for task in selected:
                common = dict(
                    split=split,
                    dataset_id=task.dataset_id,
                    tasks=((task.task_id, task.stem),),
                    pool=task.pool(split),
                )
                queries.append(
                    _source(root, "queries", spec.path("eval_queries", stem=task.stem, split=split), **common)
                )
                qrels.append(
                    _source(root, "qrels", spec.path("eval_qrels", stem=task.stem, split=split), **common)
                )
    _require(queries)
    _require(qrels)
    instructions = _source(root, "instructions", spec.path("instructions"))
    _require([instructions])
    return MBEIRInputs(
        root, instructions, tuple(pools), tuple(queries), tuple(qrels), tuple(notes), tuple(absent)
    )
