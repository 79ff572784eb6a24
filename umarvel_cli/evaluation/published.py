"""Published M-BEIR numbers (`data_manifests/published_results.yaml`) to print beside ours."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from umarvel_cli.resources import manifests_dir


@dataclass(frozen=True)
class PublishedRow:
    method: str
    values: dict[str, float]  # task stem -> %, as printed in the paper
    avg: float


@functools.cache
def load_published(path: str | None = None) -> dict[str, list[PublishedRow]]:
    """Rows per setting ("local", "global"), in file order."""
    data = yaml.safe_load(Path(path or manifests_dir() / "published_results.yaml").read_text())
    columns = list(data["columns"])
    out: dict[str, list[PublishedRow]] = {}
    for setting in ("local", "global"):
        rows = []
        for method, entry in data.get(setting, {}).items():
            values = list(entry["values"])
            if len(values) != len(columns):
                raise ValueError(f"{setting}/{method}: {len(values)} values for {len(columns)} columns")
            rows.append(
                PublishedRow(method, dict(zip(columns, map(float, values), strict=True)), float(entry["avg"]))
            )
        out[setting] = rows
    return out
