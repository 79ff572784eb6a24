"""Benchmark results as JSON records and as the markdown tables of docs/benchmarks.md.

Every bench module declares a `TableSpec`: which column names a row, which figure rows are compared
on, which row is the baseline (per group of rows measured together) and which is ours. The writer
computes each row's ratio against its group's baseline from the measured figures, so every table
row carries one, computed the same way for every benchmark: the row's speed over the baseline's
(> 1 = faster), whether the figure is a rate or a time.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

RATIO = "vs baseline"
MARKDOWN_NAME = "benchmarks.md"


@dataclass(frozen=True)
class TableSpec:
    label: str  # the column naming each row (the method)
    metric: str  # the figure rows are compared on
    baseline: str | tuple[str, ...]  # the baseline row's label (one per kind of group)
    headline: str  # our main row, for the one-line-per-benchmark overview
    group: tuple[str, ...] = ()  # columns of rows measured together; each group has its own baseline
    columns: tuple[str, ...] = ()  # further columns shown after the metric
    lower_is_better: bool = False  # the metric is a time, not a rate
    baseline_metric: str | None = None  # the baseline's figure sits in each row itself (loss)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableSpec:
        known = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**kw)

    def baselines(self) -> tuple[str, ...]:
        return (self.baseline,) if isinstance(self.baseline, str) else tuple(self.baseline)


def machine(load_average: float) -> dict[str, Any]:
    """What the numbers were measured on (they are only comparable within one run). Reads torch only
    once a benchmark has imported it: a parent grown by torch would inflate its spawned children's
    memory figures."""
    import os
    import sys
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = None
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch_version,
        "load_average": round(load_average, 2),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda"] = torch.cuda.get_device_name()
    return info


def record(result: Any, size: str, spec: TableSpec | None, **more: Any) -> dict[str, Any]:
    """One benchmark's JSON record: its rows, summary and extras, with the spec its table is built by."""
    out = {"name": result.name, "size": size, "summary": result.summary, "rows": result.rows}
    out["extra"] = result.extra
    out["table"] = asdict(spec) if spec is not None else None
    return {**out, **more}


def _group_key(row: dict[str, Any], spec: TableSpec) -> tuple:
    return tuple(row.get(c) for c in spec.group)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def ratios(rows: list[dict[str, Any]], spec: TableSpec) -> list[float | None]:
    """Each row's speed over its group's baseline (None where the group has no baseline or a figure is missing)."""
    base: dict[tuple, float] = {}
    for row in rows:
        if row.get(spec.label) in spec.baselines() and _finite(row.get(spec.metric)):
            base.setdefault(_group_key(row, spec), float(row[spec.metric]))
    out: list[float | None] = []
    for row in rows:
        value = row.get(spec.metric)
        ref = row.get(spec.baseline_metric) if spec.baseline_metric else base.get(_group_key(row, spec))
        if not (_finite(value) and _finite(ref)) or value == 0 or ref == 0:
            out.append(None)
            continue
        out.append(float(ref) / float(value) if spec.lower_is_better else float(value) / float(ref))
    return out


def fmt(value: Any) -> str:
    """A table cell: thousands separators, 3 significant digits for small numbers, '—' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("|", "\\|")
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 0.01 or a == 0:
        return f"{value:.3g}" if a < 1 else f"{value:.2f}"
    return f"{value:.1e}"


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(fmt(h) for h in header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]


def bench_table(rec: dict[str, Any]) -> list[str]:
    """One benchmark's markdown table: its rows with the spec's columns and their ratio."""
    spec = TableSpec.from_dict(rec["table"])
    rows = rec["rows"]
    header = [*spec.group, spec.label, spec.metric, *spec.columns]
    if spec.baseline_metric:
        header.insert(len(spec.group) + 2, spec.baseline_metric)
    body = []
    for row, ratio in zip(rows, ratios(rows, spec), strict=True):
        cells = [fmt(row.get(c)) for c in header]
        label_at = len(spec.group)
        if row.get(spec.label) in spec.baselines():
            cells[label_at] = f"**{cells[label_at]}**"
        body.append([*cells, fmt_ratio(ratio)])
    return _table([*header, RATIO], body)


def headline(rec: dict[str, Any]) -> list[str]:
    """The overview row of one benchmark: ours, its baseline, both figures and the ratio."""
    spec = TableSpec.from_dict(rec["table"])
    rows = rec["rows"]
    rs = ratios(rows, spec)
    for i, row in enumerate(rows):
        if row.get(spec.label) == spec.headline:
            if spec.baseline_metric:
                base_label, base_value = "plain", row.get(spec.baseline_metric)
            else:
                key = _group_key(row, spec)
                base = next(
                    (r for r in rows if r.get(spec.label) in spec.baselines() and _group_key(r, spec) == key),
                    {},
                )
                base_label, base_value = base.get(spec.label, "—"), base.get(spec.metric)
            where = ", ".join(
                f"{c}={fmt(v)}" if isinstance(v, (int, float)) else fmt(v)
                for c, v in zip(spec.group, _group_key(row, spec), strict=True)
            )
            return [
                rec["name"] + (f" ({where})" if where else ""),
                fmt(spec.headline),
                f"{fmt(row.get(spec.metric))} {spec.metric}",
                fmt(base_label),
                f"{fmt(base_value)} {spec.baseline_metric or spec.metric}",
                fmt_ratio(rs[i]),
            ]
    return [rec["name"], "—", "—", "—", "—", "—"]


def markdown(records: list[dict[str, Any]], title: str = "make bench") -> str:
    """The tables for docs/benchmarks.md: an overview (one line per benchmark), then each benchmark's
    rows; a benchmark without rows (skipped: no CUDA) gives its summary only."""
    recs = [r for r in records if r.get("table")]
    lines = [f"## {title}", ""]
    info = next((r["machine"] for r in reversed(recs) if r.get("machine")), None)  # torch read by then
    sizes = sorted({str(r.get("size")) for r in recs})
    if info:
        lines += [
            f"Size {', '.join(sizes)}; {info.get('cpus')} CPUs ({info.get('cpu')}), "
            + (f"{info['threads']} torch threads, " if info.get("threads") else "")
            + f"torch {info.get('torch')}, Python {info.get('python')}"
            + (f", {info['cuda']}" if info.get("cuda") else "")
            + f"; load average {info.get('load_average')} at the start.",
            "",
        ]
    lines += [
        f"`{RATIO}`: the row's speed over its baseline's (**bold**), measured in the same run on the same "
        "data (> 1 = faster).",
        "",
    ]
    body = [headline(r) for r in recs if r["rows"]]
    lines += _table(["benchmark", "ours", "figure", "baseline", "figure", RATIO], body)
    for rec in recs:
        seconds = rec.get("seconds")
        how = f"`{rec['command']}`" if rec.get("command") else f"size {rec.get('size')}"
        took = f", {seconds:,.0f} s" if isinstance(seconds, (int, float)) else ""
        lines += ["", f"### {rec['name']} ({how}{took})", "", rec["summary"]]
        lines += ["", *bench_table(rec)] if rec["rows"] else []
    return "\n".join(lines) + "\n"


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every JSON record in `folder` (a file may hold one record or a list, as `--json` writes)."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        out += data if isinstance(data, list) else [data]
    return out


def write_markdown(folder: Path, order: list[str] | None = None, title: str = "make bench") -> Path:
    """`folder/benchmarks.md` from the JSON records in `folder`, benchmarks in `order` (then by name)."""
    records = read_records(folder)
    rank = {name: i for i, name in enumerate(order or [])}
    records.sort(key=lambda r: (rank.get(r["name"], len(rank)), r["name"]))
    path = Path(folder) / MARKDOWN_NAME
    path.write_text(markdown(records, title))
    return path
