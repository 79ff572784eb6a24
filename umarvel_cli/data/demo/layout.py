"""Write the built demo in the M-BEIR on-disk layout, with file names from the spec's patterns.

Everything is written in a fixed order with fixed formatting, so the same seed gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from umarvel_cli.console import make_progress
from umarvel_cli.data.demo.build import SPLITS, DemoData
from umarvel_cli.data.demo.drawing import write_png
from umarvel_cli.data.demo.prompts import prompts_for
from umarvel_cli.data.demo.records import Candidate, Query, id_number

INSTRUCTION_HEADER = (
    "query_modality",
    "cand_modality",
    "dataset_name",
    "dataset_id",
    "prompt_1",
    "prompt_2",
    "prompt_3",
    "prompt_4",
)


def _write_lines(path: Path, lines: Iterable[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line + "\n")
            n += 1
    return n


def _jsonl(records: Iterable[dict[str, Any]]) -> Iterable[str]:
    return (json.dumps(r, ensure_ascii=False) for r in records)


def _qrels(queries: Iterable[Query]) -> Iterable[str]:
    """Five columns, positives only: `qid 0 did 1 task_id`."""
    for q in queries:
        for did in q.pos:
            yield f"{q.qid} 0 {did} 1 {q.task_id}"


def _sorted(cands: Iterable[Candidate]) -> list[Candidate]:
    unique = {c.did: c for c in cands}
    return [unique[d] for d in sorted(unique, key=id_number)]


def write_layout(data: DemoData, root: Path) -> dict[str, Any]:
    """Write queries, pools, qrels, instructions and images; return the counts of what was written."""
    spec = data.spec
    counts: dict[str, Any] = {
        "queries": {s: {} for s in SPLITS},
        "qrels": {s: {} for s in SPLITS},
        "train_files": {},
        "pools": {},
    }

    # train: one query file and one qrels file per dataset, holding all that dataset's tasks
    datasets = list(dict.fromkeys(t.dataset for t in spec.tasks))
    for dataset in datasets:
        queries = [q for b in data.builds if b.task.dataset == dataset for q in b.queries.get("train", [])]
        counts["train_files"][dataset] = _write_lines(
            root / spec.path("train_queries", dataset=dataset), _jsonl(q.record() for q in queries)
        )
        _write_lines(root / spec.path("train_qrels", dataset=dataset), _qrels(queries))
    for task in spec.tasks:
        b = data.build_for(task.stem, "train")
        counts["queries"]["train"][task.stem] = len(b.queries.get("train", []))
        counts["qrels"]["train"][task.stem] = sum(len(q.pos) for q in b.queries.get("train", []))

    # val / test: one query file and one qrels file per task
    for split in SPLITS[1:]:
        for task in spec.tasks:
            queries = data.build_for(task.stem, split).queries.get(split, [])
            counts["queries"][split][task.stem] = _write_lines(
                root / spec.path("eval_queries", stem=task.stem, split=split),
                _jsonl(q.record() for q in queries),
            )
            counts["qrels"][split][task.stem] = _write_lines(
                root / spec.path("eval_qrels", stem=task.stem, split=split), _qrels(queries)
            )

    # local pools (val and test share one unless the pool name has the split in it)
    local: dict[str, list[Candidate]] = {}
    for task in spec.tasks:
        for split in SPLITS[1:]:
            local.setdefault(task.pool(split), _sorted(data.build_for(task.stem, split).pool))
    for name, cands in local.items():
        counts["pools"][name] = _write_lines(
            root / spec.path("local_pool", pool=name), _jsonl(c.record() for c in cands)
        )

    # global pools: train candidates; val positives and negatives only (trimmed); all local test pools
    by_did = {c.did: c for b in data.builds if b.group != "train" for c in b.pool}
    members: dict[str, list[Candidate]] = {
        "train": _sorted(c for b in data.builds if b.group == "train" for c in b.pool),
        "val": _sorted(
            by_did[d] for b in data.builds for q in b.queries.get("val", []) for d in (*q.pos, *q.neg)
        ),
        "test": _sorted(c for name in dict.fromkeys(t.pool("test") for t in spec.tasks) for c in local[name]),
    }
    for name in spec.global_pools:
        split = name.rsplit("_", 1)[-1]
        counts["pools"][name] = _write_lines(
            root / spec.path("global_pool", pool=name), _jsonl(c.record() for c in members[split])
        )
    counts["candidates"] = len({c.did for b in data.builds for c in b.pool})

    counts["instructions"] = write_instructions(data, root)
    counts["images"] = write_pictures(data, root)
    counts["cross_positives"] = data.cross_positives
    return counts


def write_pictures(data: DemoData, root: Path, every: int = 512) -> int:
    """Draw every registered picture (most of the generation time), with a progress bar on stderr."""
    pictures = data.registry.pictures
    with make_progress("images") as progress:
        task = progress.add_task("demo images", total=len(pictures), rate="")
        for n, picture in enumerate(pictures, 1):
            write_png(root / picture.path, picture.item, picture.jitter)
            if n % every == 0:
                progress.update(task, completed=n)
        progress.update(task, completed=len(pictures))
    return len(pictures)


def write_instructions(data: DemoData, root: Path) -> int:
    """`query_instructions.tsv`: a header and one row of four prompts per task."""
    spec = data.spec
    rows = ["\t".join(INSTRUCTION_HEADER)]
    for task in spec.tasks:
        prompts = prompts_for(task)
        rows.append(
            "\t".join(
                [
                    task.query_modality,
                    task.cand_modality,
                    spec.display.get(task.dataset_id, task.dataset),
                    str(task.dataset_id),
                    *prompts,
                ]
            )
        )
    _write_lines(root / spec.path("instructions"), rows)
    return len(rows) - 1
