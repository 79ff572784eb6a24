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


def peak_rss_mib() -> float:
    """This process's resident high-water mark (MiB): VmHWM, which starts afresh at exec. Not
    `ru_maxrss`: Linux carries it over from the forked image into a spawned child, so a benchmark
    process started by a big parent (`bench all` after a model was loaded) reported the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


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
