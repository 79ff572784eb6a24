"""Where people read progress: stderr, so stdout stays clean for shell pipelines.

On a terminal: rich bars, each naming what it runs. Elsewhere (a log file, a batch job): plain lines,
one per task every `UMARVEL_PROGRESS_EVERY` seconds (default 30) and one when it ends, with the
count, the task's own fields (loss, lr, ...), the rate and the time left.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

err_console = Console(stderr=True, soft_wrap=True)  # a log line stays one line


def progress_every() -> float:
    try:
        return float(os.environ.get("UMARVEL_PROGRESS_EVERY", "30"))
    except ValueError:
        return 30.0


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass
class PlainTask:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    start_count: float = 0.0
    last_print: float = field(default_factory=time.monotonic)
    finished_printed: bool = False

    @property
    def speed(self) -> float | None:
        """Items per second since this task was added (resumed work excluded)."""
        elapsed = time.monotonic() - self.started
        done = self.completed - self.start_count
        return done / elapsed if elapsed > 0 and done > 0 else None

    def line(self, unit: str) -> str:
        count = f"{self.completed:,.0f}" + (f"/{self.total:,.0f}" if self.total else "")
        parts = [f"{self.description}: {count} {unit}"]
        if self.total:
            parts.append(f"({100 * self.completed / self.total:.0f}%)")
        rate = str(self.fields.get("rate") or "")
        if rate:
            parts.append(rate)
        speed = self.speed
        if speed and "/s" not in rate:
            parts.append(f"{speed:,.1f} {unit}/s")
        parts.append(f"elapsed {_clock(time.monotonic() - self.started)}")
        if speed and self.total and self.completed < self.total:
            parts.append(f"ETA {_clock((self.total - self.completed) / speed)}")
        return " ".join(parts)


class PlainProgress:
    """The subset of `rich.progress.Progress` the package uses, as plain timed lines on stderr."""

    def __init__(self, unit: str = "items", every: float | None = None, stream: Any = None) -> None:
        self.unit = unit
        self.every = progress_every() if every is None else every
        self.stream = stream
        self.tasks: list[PlainTask] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            for task in self.tasks:
                if not task.finished_printed:
                    self._print(task)

    def add_task(
        self, description: str, total: float | None = None, completed: float = 0, **fields: Any
    ) -> int:
        self.tasks.append(PlainTask(description, total, completed, dict(fields), start_count=completed))
        return len(self.tasks) - 1

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if description is not None:
            task.description = description
        task.fields.update(fields)
        self._maybe_print(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _maybe_print(self, task: PlainTask) -> None:
        now = time.monotonic()
        finished = task.total is not None and task.completed >= task.total
        if finished and not task.finished_printed:
            task.finished_printed = True
            self._print(task)
        elif now - task.last_print >= self.every:
            self._print(task)

    def _print(self, task: PlainTask) -> None:
        task.last_print = time.monotonic()
        stream = self.stream or sys.stderr
        print(task.line(self.unit), file=stream, flush=True)


def make_progress(unit: str = "items") -> Progress | PlainProgress:
    """Rich bars with a rate column on a terminal's stderr; plain timed lines when stderr is a log."""
    if not err_console.is_terminal:
        return PlainProgress(unit)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        refresh_per_second=4,
    )


def track(
    items: Iterable[T], total: int | None, description: str, unit: str = "items", every: float = 0.25
) -> Iterator[T]:
    """Iterate with a progress bar that shows items/s.

    The bar is updated at most every `every` seconds (with the count since the last update), so a
    loop over millions of cheap rows does not pay rich's bookkeeping per row.
    """
    with make_progress(unit) as progress:
        task = progress.add_task(description, total=total, rate="")
        pending, last = 0, time.monotonic()
        for item in items:
            yield item
            pending += 1
            now = time.monotonic()
            if now - last >= every:
                progress.advance(task, pending)
                pending, last = 0, now
                speed = progress.tasks[task].speed
                if speed:
                    progress.update(task, rate=f"{speed:,.1f} {unit}/s")
        if pending:
            progress.advance(task, pending)


def info(message: str) -> None:
    err_console.print(message, highlight=False)


def warn(message: str) -> None:
    """A warning on stderr, whatever else the stage writes it into (a report, a manifest)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
