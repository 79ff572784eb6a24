"""`prepare mbeir`: read an M-BEIR folder (layout: docs/mbeir.md) into validated, resumable tables.

Streams every file in blocks of lines; what stays in memory is ids only (each candidate's content hash, the
ids of the pools positives are checked against, each split's qids), so the 5.6M-row global pool fits in
a few GiB. Rows are produced in a fixed order (instructions, pools, queries, qrels, each in layout
order), which is what makes a killed run resume to the same tables: a resumed run reads everything
again and skips the rows its completed shards already hold.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
from rich.progress import Progress, TaskID

from umarvel_cli.artifacts.manifest import Manifest, fingerprint, require_manifest
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.console import err_console, info, make_progress, warn
from umarvel_cli.data.mbeir.layout import SPLITS, MBEIRInputs, SourceFile, plan_inputs
from umarvel_cli.data.mbeir.output import BadRows, TableSink
from umarvel_cli.data.mbeir.pool_block import content_keys, parse_pool_block
from umarvel_cli.data.mbeir.records import (
    RowError,
    parse_instruction_line,
    parse_json_line,
    parse_qrels_line,
    parse_query,
)
from umarvel_cli.data.mbeir.report import PrepareReport
from umarvel_cli.data.mbeir.tasks import MBEIRSpec, load_mbeir_spec
from umarvel_cli.errors import UmarvelError

STAGE = "prepare-mbeir"
TABLE_NAMES = ("instructions", "candidates", "pools", "queries", "qrels")
_POOL_BITS = 6  # a candidate's last pool index is packed into the low bits of its content key
_MAX_IMAGE_EXAMPLES = 5
_BLOCK_BYTES = 1 << 20
_POOL_BLOCK_BYTES = 8 << 20  # pool blocks go to pyarrow's threaded JSON reader in 1 MiB chunks


class PhaseProgress:
    """One progress bar per phase (pools, queries, qrels) over the bytes of all its files, on stderr."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.lines = 0

    def start(self, label: str, files: Sequence[SourceFile]) -> None:
        if self.progress is not None:
            total = sum(f.path.stat().st_size for f in files)
            self.task = self.progress.add_task(label, total=total, rate="")
            self.lines = 0

    def advance(self, nbytes: int, nlines: int) -> None:
        if self.progress is not None and self.task is not None:
            self.lines += nlines
            self.progress.update(self.task, advance=nbytes, rate=f"{self.lines:,} lines")


def iter_line_blocks(
    path: Path, progress: PhaseProgress, block_bytes: int = _BLOCK_BYTES
) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the block's first line, its raw lines) over a file, `block_bytes` at a time.
    Blocks keep the per-line loops of the callers tight."""
    with open(path, "rb") as fh:
        lineno = 1
        while lines := fh.readlines(block_bytes):
            yield lineno, lines
            lineno += len(lines)
            progress.advance(sum(map(len, lines)), len(lines))


def iter_lines(path: Path, progress: PhaseProgress) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of the non-blank lines (for the small files)."""
    for first, lines in iter_line_blocks(path, progress):
        for lineno, raw in enumerate(lines, first):
            if raw.strip():
                yield lineno, raw


def _stem_in(source: SourceFile, task_id: int) -> str:
    """The task stem a row of `source` with this task id reports under; a task of another file is bad."""
    stem = source.stem_of(task_id)
    if stem is None:
        expected = ", ".join(str(t) for t, _ in source.tasks)
        raise RowError("task_id", f"task id {task_id} does not belong in this file (expected {expected})")
    return stem


class CandidateIndex:
    """Id-level state of the pools read so far: a content key per distinct did and the ids of the pools
    that positives are checked against. Content keys use Python's `hash`, which is only stable inside
    one process; that is enough because every run (also a resumed one) rebuilds this from the files.
    """

    def __init__(self) -> None:
        self.content: dict[str, int] = {}
        self.members: dict[str, set[str]] = {}
        self.pool_names: list[str] = []


class MBEIRPreparer:
    """One prepare run: owns the sinks, the bad-row policy and the report while the files are read."""

    def __init__(
        self,
        spec: MBEIRSpec,
        inputs: MBEIRInputs,
        out: Path,
        on_error: str,
        rows_per_shard: int,
        resume: bool,
        check_images: bool,
    ) -> None:
        self.spec = spec
        self.inputs = inputs
        self.report = PrepareReport(images_checked=check_images, notes=list(inputs.notes))
        self.bad = BadRows(on_error, out)
        self.sinks = {t: TableSink(out, t, rows_per_shard, resume) for t in TABLE_NAMES}
        self.index = CandidateIndex()
        self.qids: dict[str, set[str]] = {}
        self.known_tasks = frozenset(spec.task_modalities)
        self.root_prefix = str(inputs.root) + os.sep
        self.check_images = check_images
        self.progress = PhaseProgress()

    # -- images ---------------------------------------------------------------------------------
    def _check_image(self, table: str, image: str) -> None:
        if not os.path.exists(self.root_prefix + image):
            self.report.missing_images[table] += 1
            if len(self.report.missing_image_examples) < _MAX_IMAGE_EXAMPLES:
                self.report.missing_image_examples.append(image)

    # -- instructions ---------------------------------------------------------------------------
    def read_instructions(self, source: SourceFile) -> None:
        sink = self.sinks["instructions"]
        known = frozenset(self.spec.datasets)
        first = True
        for lineno, raw in iter_lines(source.path, self.progress):
            if first:  # the header row
                first = False
                continue
            try:
                row = parse_instruction_line(raw.decode("utf-8"), known)
            except (RowError, UnicodeDecodeError) as e:
                self.bad(source.path, lineno, e if isinstance(e, RowError) else RowError(None, str(e)))
                continue
            sink.add(row)
            self.report.instructions += 1
        if self.report.instructions == 0:
            raise UmarvelError(
                "no instruction rows",
                file=source.path,
                expected="a header and one row per dataset and modality",
            )

    # -- pools ----------------------------------------------------------------------------------
    def read_pool(self, source: SourceFile, keep_ids: bool) -> None:
        """Add a pool file's rows: each did once to `candidates`, every (pool, did) to `pools`."""
        index = self.index
        if len(index.pool_names) >= 1 << _POOL_BITS:
            raise UmarvelError(f"more than {1 << _POOL_BITS} pools in one prepare")
        pool_index = len(index.pool_names)
        index.pool_names.append(source.pool)
        name = source.pool
        members: set[str] | None = set() if keep_ids else None
        if members is not None:
            index.members[name] = members
        content = index.content
        candidates, pools, bad = self.sinks["candidates"], self.sinks["pools"], self.bad
        low = (1 << _POOL_BITS) - 1
        rows = 0

        def report_bad(lineno: int, error: RowError) -> None:
            bad(source.path, lineno, error)

        for first, lines in iter_line_blocks(source.path, self.progress, _POOL_BLOCK_BYTES):
            table, numbers = parse_pool_block(lines, first, report_bad)
            dids = table["did"].to_pylist()
            keys = content_keys(table)
            new: list[int] = []
            kept: list[str] = []
            for i, did in enumerate(dids):
                key = (hash(keys[i]) << _POOL_BITS) | pool_index
                previous = content.get(did)
                if previous is None:
                    new.append(i)
                elif previous >> _POOL_BITS != key >> _POOL_BITS:
                    other = index.pool_names[previous & low]
                    message = f"candidate {did} differs from its row in pool {other}"
                    bad(source.path, numbers[i], RowError("did", message))
                    continue
                elif previous & low == pool_index:
                    bad(source.path, numbers[i], RowError("did", f"duplicate did {did} in pool {name}"))
                    continue
                content[did] = key
                kept.append(did)
            fresh = table if len(new) == len(dids) else table.take(pa.array(new, type=pa.int64()))
            candidates.extend_table(fresh)
            if self.check_images:
                for image in fresh["image"].to_pylist():
                    if image is not None:
                        self._check_image("candidates", image)
            if members is not None:
                members.update(kept)
            pools.extend_columns([[name] * len(kept), kept])
            rows += len(kept)
        self.report.pools[name] = rows

    # -- queries --------------------------------------------------------------------------------
    def read_queries(self, source: SourceFile) -> None:
        split = source.split
        sink, bad, report = self.sinks["queries"], self.bad, self.report
        qids = self.qids.setdefault(split, set())
        pool_ids = self.index.members.get(source.pool) if source.pool else None
        if pool_ids is not None:
            for _, stem in source.tasks:
                report.checked_pool[(split, stem)] = source.pool
        content = self.index.content
        dataset_id = source.dataset_id
        prefix = f"{dataset_id}:"
        for lineno, raw in iter_lines(source.path, self.progress):
            try:
                qid, modality, text, image, pos, neg, src, task_id = parse_query(
                    parse_json_line(raw), self.known_tasks
                )
                stem = _stem_in(source, task_id)
                if not qid.startswith(prefix):
                    raise RowError(
                        "qid", f"qid {qid!r} is not of this file's dataset (expected '{prefix}<n>')"
                    )
                if qid in qids:
                    raise RowError("qid", f"duplicate qid {qid} in split {split}")
            except RowError as e:
                bad(source.path, lineno, e)
                continue
            qids.add(qid)
            key = (split, stem)
            report.queries[key] += 1
            if not pos:
                report.no_positive[key] += 1
            elif pool_ids is not None:
                for did in pos:
                    if did not in pool_ids:
                        if did.startswith(prefix):
                            report.missing_positive[key] += 1
                        else:
                            report.cross_dataset_positive[key] += 1
                        if did not in content:
                            report.positive_in_no_pool[key] += 1
            if self.check_images and image is not None:
                self._check_image("queries", image)
            sink.add((qid, split, task_id, dataset_id, modality, text, image, pos, neg, src))

    # -- qrels ----------------------------------------------------------------------------------
    def read_qrels(self, source: SourceFile) -> None:
        split = source.split
        sink, bad, report = self.sinks["qrels"], self.bad, self.report
        qids = self.qids.get(split, set())
        for lineno, raw in iter_lines(source.path, self.progress):
            try:
                qid, did, relevance, task_id = parse_qrels_line(raw.decode("utf-8"), self.known_tasks)
                stem = _stem_in(source, task_id)
            except RowError as e:
                bad(source.path, lineno, e)
                continue
            except UnicodeDecodeError as e:
                bad(source.path, lineno, RowError(None, f"not UTF-8 ({e})"))
                continue
            report.qrels[(split, stem)] += 1
            if qid not in qids:
                report.qrels_unknown_qid[split] += 1
            sink.add((qid, did, relevance, task_id, split))

    # -- the whole run --------------------------------------------------------------------------
    def run(self) -> dict[str, int]:
        inputs = self.inputs
        try:
            with make_progress("bytes") as progress:
                self.progress = PhaseProgress(progress)
                self.read_instructions(inputs.instructions)
                self.progress.start("prepare mbeir: pools", inputs.pools)
                checked = {s.pool for s in inputs.queries if s.pool}
                for source in inputs.pools:
                    self.read_pool(source, keep_ids=source.pool in checked)
                unchecked = {(s.split, s.pool) for s in inputs.queries if s.pool not in self.index.members}
                for split, pool in sorted(unchecked, key=lambda k: SPLITS.index(k[0])):
                    self.report.notes.append(f"{split}: positives not checked (pool {pool} was not read)")
                self.progress.start("prepare mbeir: queries", inputs.queries)
                for source in inputs.queries:
                    self.read_queries(source)
                self.progress.start("prepare mbeir: qrels", inputs.qrels)
                for source in inputs.qrels:
                    self.read_qrels(source)
            counts = {table: sink.close() for table, sink in self.sinks.items()}
        except BaseException:
            self.bad.abandon()
            raise
        self.bad.close()
        self.report.candidates = counts["candidates"]
        self.report.rejected.update(self.bad.counts)
        counts["rejected"] = self.bad.total
        return counts


def _normalise_splits(splits: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    items = splits.split(",") if isinstance(splits, str) else list(splits)
    items = [s.strip() for s in items if s.strip()]
    unknown = [s for s in items if s not in SPLITS]
    if unknown or not items:
        raise UmarvelError(
            f"unknown split {unknown[0]!r}" if unknown else "no split given",
            field="--split",
            expected="a comma list of train, val, test",
        )
    return tuple(s for s in SPLITS if s in items)  # canonical order, so the same request plans the same


def _normalise_tasks(tasks: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    """`auto`, `all`, or the given stems (a comma list or a sequence)."""
    if isinstance(tasks, str):
        if tasks.strip() in ("auto", "all"):
            return tasks.strip()
        tasks = tasks.split(",")
    return tuple(t.strip() for t in tasks if t.strip())


def prepare_mbeir(
    root: str | Path,
    out: str | Path,
    splits: tuple[str, ...] | list[str] | str = SPLITS,
    on_error: str = "fail",
    force: bool = False,
    rows_per_shard: int = 100_000,
    tasks: str | tuple[str, ...] | list[str] = "auto",
) -> Manifest:
    """Read the M-BEIR folder `root` into tables under `out`; returns the (new or up-to-date) manifest."""
    root = Path(root).resolve()
    out = Path(out)
    splits = _normalise_splits(splits)
    if on_error not in ("fail", "skip"):
        raise UmarvelError(f"unknown --on-error {on_error!r}", field="--on-error", expected="fail or skip")
    if rows_per_shard < 1:
        raise UmarvelError("must be at least 1", field="--rows-per-shard")
    spec = load_mbeir_spec()
    tasks = _normalise_tasks(tasks)
    inputs = plan_inputs(root, spec, splits, tasks)
    if inputs.absent_tasks:
        warn(
            f"prepare mbeir: {len(inputs.absent_tasks)} of {len(spec.tasks)} tasks are absent and not read "
            f"({', '.join(inputs.absent_tasks)}); --tasks all requires the full release"
        )
    fingerprints = {f.rel: fingerprint(f.path) for f in inputs.all_files()}
    params = {
        "root": str(root),
        "splits": list(splits),
        "on_error": on_error,
        "rows_per_shard": rows_per_shard,
        "tasks": tasks if isinstance(tasks, str) else list(tasks),
        "absent_tasks": list(inputs.absent_tasks),
    }
    plan = plan_stage(out, STAGE, params, fingerprints, force=force, input_paths=[root])
    if plan.up_to_date:
        info(f"prepare mbeir: {out} is up to date ({plan.reason}); --force redoes it")
        return require_manifest(out, STAGE)
    if plan.status != "fresh":  # a refused fresh run prints only its error line
        info(f"prepare mbeir: {plan.status} ({plan.reason}) → {out}")
    check_images = (root / spec.files["images_dir"]).is_dir()
    preparer = MBEIRPreparer(spec, inputs, out, on_error, rows_per_shard, plan.resume, check_images)
    counts = preparer.run()
    report = preparer.report
    manifest = finish_stage(plan, counts, extra={"images_root": str(root), "report": report.to_dict()})
    report.render(err_console)
    return manifest
