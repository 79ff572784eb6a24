"""What a prepare found: rows per split/task/pool and the validation counts, for the terminal and manifest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


@dataclass
class PrepareReport:
    """Counters keyed by (split, task stem) or pool name; `to_dict` is what the manifest keeps."""

    queries: Counter = field(default_factory=Counter)
    qrels: Counter = field(default_factory=Counter)
    no_positive: Counter = field(default_factory=Counter)  # queries with an empty pos_cand_list
    missing_positive: Counter = field(default_factory=Counter)  # same-dataset positives absent from the pool
    cross_dataset_positive: Counter = field(default_factory=Counter)  # other-dataset ones (OVEN/InfoSeek, P3)
    positive_in_no_pool: Counter = field(default_factory=Counter)  # of the two above: in no pool read at all
    checked_pool: dict = field(default_factory=dict)  # (split, stem) -> pool the positives were checked in
    pools: Counter = field(default_factory=Counter)
    qrels_unknown_qid: Counter = field(default_factory=Counter)  # split -> qrels rows naming no query
    missing_images: Counter = field(default_factory=Counter)  # table -> rows whose image file is absent
    missing_image_examples: list = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)  # file -> rejected rows
    candidates: int = 0
    instructions: int = 0
    images_checked: bool = False
    notes: list = field(default_factory=list)

    def task_keys(self) -> list[tuple[str, str]]:
        """(split, task stem) in reading order, which is the M-BEIR report order of the task table."""
        return list(dict.fromkeys([*self.queries, *self.qrels]))

    def to_dict(self) -> dict[str, Any]:
        tasks = {
            f"{split}/{stem}": {
                "queries": self.queries[(split, stem)],
                "qrels": self.qrels[(split, stem)],
                "no_positive": self.no_positive[(split, stem)],
                "missing_positive": self.missing_positive[(split, stem)],
                "cross_dataset_positive": self.cross_dataset_positive[(split, stem)],
                "positive_in_no_pool": self.positive_in_no_pool[(split, stem)],
                "checked_pool": self.checked_pool.get((split, stem)),
            }
            for split, stem in self.task_keys()
        }
        return {
            "tasks": tasks,
            "pools": dict(self.pools),
            "candidates": self.candidates,
            "instructions": self.instructions,
            "qrels_unknown_qid": dict(self.qrels_unknown_qid),
            "images_checked": self.images_checked,
            "missing_images": dict(self.missing_images),
            "missing_image_examples": list(self.missing_image_examples),
            "rejected": dict(self.rejected),
            "notes": list(self.notes),
        }

    def render(self, console: Console) -> None:
        tasks = Table(
            title="prepare mbeir: queries per split and task",
            caption="no pos: queries without positives; miss same/other: positives of the same/another "
            "dataset that are not in the task's pool (other = OVEN/InfoSeek, expected); in no pool: of "
            "those, the ones no pool holds",
            box=box.SIMPLE_HEAD,
        )
        tasks.add_column("split", no_wrap=True)
        tasks.add_column("task", no_wrap=True, min_width=17)
        for col in ("queries", "qrels", "no\npos", "miss\nsame", "miss\nother", "in no\npool"):
            tasks.add_column(col, justify="right")
        for key in self.task_keys():
            missing = self.missing_positive[key]
            tasks.add_row(
                key[0],
                key[1],
                f"{self.queries[key]:,}",
                f"{self.qrels[key]:,}",
                _warn(self.no_positive[key]),
                _warn(missing) if key in self.checked_pool else "not checked",
                f"{self.cross_dataset_positive[key]:,}",
                _warn(self.positive_in_no_pool[key]),
            )
        console.print(tasks)
        pools = Table(title="prepare mbeir: candidate pools")
        pools.add_column("pool")
        pools.add_column("rows", justify="right")
        for name, rows in self.pools.items():
            pools.add_row(name, f"{rows:,}")
        pools.add_row("[bold]distinct candidates[/]", f"[bold]{self.candidates:,}[/]")
        console.print(pools)
        console.print(f"instructions: {self.instructions} rows")
        if self.images_checked:
            console.print(f"missing image files: {_warn(sum(self.missing_images.values()))}")
        else:
            console.print("image files: not checked (no images folder)")
        for split, n in self.qrels_unknown_qid.items():
            console.print(f"[yellow]{split}: {n:,} qrels rows name a qid that is not a query[/]")
        if self.rejected:
            console.print(f"[yellow]rejected rows: {sum(self.rejected.values()):,} (see rejected.jsonl)[/]")
        for note in self.notes:
            console.print(f"note: {note}")


def _warn(n: int) -> str:
    return f"[yellow]{n:,}[/]" if n else "0"
