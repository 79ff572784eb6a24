"""Where people read progress: rich on stderr, so stdout stays clean for shell pipelines."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

err_console = Console(stderr=True)


def make_progress(unit: str = "items") -> Progress:
    """A progress bar with a rate column, drawn on stderr and silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal,
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
