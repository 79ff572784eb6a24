"""The zero-shot benchmark table, read from `data_manifests/zeroshot.yaml` (never hard-coded in code)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from umarvel_cli.errors import UmarvelError
from umarvel_cli.resources import manifests_dir

PROTOCOLS = ("ranking", "gallery", "choice")
_TARGETS = {"i": "image", "t": "text", "v": "video"}  # the part after "→" in a task's direction


@dataclass(frozen=True)
class TaskSpec:
    name: str
    task_id: int  # the direction's task type (`task_types` of zeroshot.yaml: M-BEIR's, plus t→v)
    dataset_id: int  # names this task in the tables: the benchmark's dataset_id x 10 + its position
    direction: str
    query_modality: str
    cand_modality: str  # what the task retrieves (image, text or video)
    protocol: str
    headline: str
    metrics: tuple[str, ...]
    instruction: str | None  # the query instruction of the paper's evaluation code, if it uses one


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    display: str
    dataset_id: int
    reader: str
    source: str
    splits: tuple[str, ...]
    default_split: str
    files: dict[str, Any]
    tasks: tuple[TaskSpec, ...]
    paper: dict[str, dict[str, float]]
    recall_relevance: int = 1
    submission: str | None = None
    headline_mean: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def file(self, key: str, **fmt: str) -> str:
        return str(self.files[key]).format(**fmt)


@dataclass(frozen=True)
class ZeroShotSuite:
    reference_method: str
    benchmarks: dict[str, BenchmarkSpec]

    def get(self, name: str) -> BenchmarkSpec:
        if name not in self.benchmarks:
            raise UmarvelError(
                f"unknown benchmark {name!r}",
                field="--benchmark",
                expected="one of " + ", ".join(sorted(self.benchmarks)),
            )
        return self.benchmarks[name]


def _task(i: int, raw: dict[str, Any], benchmark_id: int, types: dict[tuple[str, str], int]) -> TaskSpec:
    if raw["protocol"] not in PROTOCOLS:
        raise ValueError(f"zeroshot.yaml: task {raw['name']}: unknown protocol {raw['protocol']!r}")
    cand = _TARGETS[raw["direction"].split("→")[1]]
    try:
        task_type = types[(raw["query_modality"], cand)]
    except KeyError:
        raise ValueError(
            f"zeroshot.yaml: task {raw['name']}: no task type for {raw['query_modality']} → {cand}"
        ) from None
    return TaskSpec(
        name=raw["name"],
        task_id=task_type,
        dataset_id=benchmark_id * 10 + i,
        direction=raw["direction"],
        query_modality=raw["query_modality"],
        cand_modality=cand,
        protocol=raw["protocol"],
        headline=raw["headline"],
        metrics=tuple(raw["metrics"]),
        instruction=raw.get("instruction"),
    )


@functools.lru_cache(maxsize=4)
def load_zeroshot_suite(path: str | None = None) -> ZeroShotSuite:
    p = Path(path) if path else manifests_dir() / "zeroshot.yaml"
    raw = yaml.safe_load(p.read_text())
    known = {
        "display", "dataset_id", "reader", "source", "splits", "default_split", "files", "tasks",
        "paper", "recall_relevance", "submission", "headline_mean",
    }  # fmt: skip
    types = {(q, c): int(t) for t, (q, c) in raw["task_types"].items()}
    out: dict[str, BenchmarkSpec] = {}
    for name, b in raw["benchmarks"].items():
        if len(b["tasks"]) > 10:
            raise ValueError(f"zeroshot.yaml: {name} has more than 10 tasks (task dataset ids would collide)")
        out[name] = BenchmarkSpec(
            name=name,
            display=b["display"],
            dataset_id=int(b["dataset_id"]),
            reader=b["reader"],
            source=b["source"],
            splits=tuple(b["splits"]),
            default_split=b["default_split"],
            files=dict(b["files"]),
            tasks=tuple(_task(i, t, int(b["dataset_id"]), types) for i, t in enumerate(b["tasks"])),
            paper={k: {m: float(v) for m, v in d.items()} for k, d in (b.get("paper") or {}).items()},
            recall_relevance=int(b.get("recall_relevance", 1)),
            submission=b.get("submission"),
            headline_mean=bool(b.get("headline_mean", False)),
            extra={k: v for k, v in b.items() if k not in known},
        )
    return ZeroShotSuite(reference_method=raw["reference_method"], benchmarks=out)
