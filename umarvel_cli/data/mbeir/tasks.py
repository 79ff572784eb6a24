"""The M-BEIR task table, read from `data_manifests/mbeir.yaml` (never hard-coded in code)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from umarvel_cli.resources import manifests_dir


@dataclass(frozen=True)
class TaskSpec:
    stem: str
    dataset: str
    dataset_id: int
    task_id: int
    query_modality: str
    cand_modality: str
    metric_k: int
    pool_pattern: str

    def pool(self, split: str) -> str:
        """Name of the local pool this task is evaluated against on `split` (val or test)."""
        return self.pool_pattern.format(split=split)


@dataclass(frozen=True)
class MBEIRSpec:
    tasks: tuple[TaskSpec, ...]
    datasets: dict[int, str]
    display: dict[int, str]
    task_modalities: dict[int, tuple[str, str]]
    global_pools: tuple[str, ...]
    files: dict[str, str]

    def task(self, stem: str) -> TaskSpec:
        for t in self.tasks:
            if t.stem == stem:
                return t
        raise KeyError(stem)

    @property
    def order(self) -> list[str]:
        return [t.stem for t in self.tasks]

    def dataset_id(self, name: str) -> int:
        for i, n in self.datasets.items():
            if n == name:
                return i
        raise KeyError(name)

    def path(self, key: str, **fmt: Any) -> str:
        return self.files[key].format(**fmt)


@functools.cache
def load_mbeir_spec(path: str | None = None) -> MBEIRSpec:
    data = yaml.safe_load(Path(path or manifests_dir() / "mbeir.yaml").read_text())
    datasets = {int(k): str(v) for k, v in data["datasets"].items()}
    mods = {int(k): (v[0], v[1]) for k, v in data["task_modalities"].items()}
    tasks = tuple(
        TaskSpec(
            stem=t["stem"],
            dataset=datasets[int(t["dataset_id"])],
            dataset_id=int(t["dataset_id"]),
            task_id=int(t["task_id"]),
            query_modality=mods[int(t["task_id"])][0],
            cand_modality=mods[int(t["task_id"])][1],
            metric_k=int(t["metric_k"]),
            pool_pattern=str(t["pool"]),
        )
        for t in data["tasks"]
    )
    return MBEIRSpec(
        tasks=tasks,
        datasets=datasets,
        display={int(k): str(v) for k, v in data["dataset_display"].items()},
        task_modalities=mods,
        global_pools=tuple(data["global_pools"]),
        files=dict(data["files"]),
    )


def dataset_id_of(identifier: str) -> int:
    """M-BEIR ids are "{dataset_id}:{n}"."""
    head, _, _ = identifier.partition(":")
    return int(head)
