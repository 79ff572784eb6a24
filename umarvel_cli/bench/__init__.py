"""Speed benchmarks. Each compares our path with a baseline measured in the same run and reports the
ratio, so numbers stay meaningful across machines. Never run from tests with timing assertions.

A benchmark module exposes `run(size: str) -> BenchResult`, `SIZES` and `TABLE` (a `table.TableSpec`:
its baseline row, so the markdown tables give every row its ratio); `size` is "quick" (what
`make bench` runs: seconds to a minute each on CPU) or "default" (the issue-size measurements).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

REGISTRY: dict[str, str] = {
    "prepare": "umarvel_cli.bench.prepare",
    "embed": "umarvel_cli.bench.embed",
    "search": "umarvel_cli.bench.search",
    "train": "umarvel_cli.bench.train",
    "loss": "umarvel_cli.bench.loss",
    "mine": "umarvel_cli.bench.mine",
    "rerank": "umarvel_cli.bench.rerank",
}


@dataclass
class BenchResult:
    name: str
    summary: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def load(name: str):
    """The benchmark module, or None when it is not built yet."""
    try:
        return importlib.import_module(REGISTRY[name])
    except ModuleNotFoundError as e:
        if e.name == REGISTRY[name]:
            return None
        raise


def finish_generated_embeddings(folder: Any, rows: int) -> None:
    """Mark generated candidate vectors as a finished `embed` output: stages read only complete ones."""
    from umarvel_cli.artifacts import Manifest, write_manifest

    write_manifest(folder, Manifest(stage="embed", params={"generated": True}, counts={"embedded": rows}))
