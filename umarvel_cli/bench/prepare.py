"""Benchmark `prepare mbeir`'s candidate-pool reading against pyarrow's own JSON-lines reader.

A synthetic pool in the real record shape (mixed modalities, nulls, JSON src_content) is written to a
temporary folder; each reader then runs in a fresh process so its peak memory (VmHWM) is its own.
Ours parses, validates, dedupes and writes the `candidates` and `pools` tables; pyarrow only parses.
Ours is measured twice: as shipped (plain blocks parsed by pyarrow, then checked and deduped) and with
every block on the per-line parser (what a pool whose blocks hold odd lines costs).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import resource
import tempfile
import time
from pathlib import Path

from umarvel_cli.bench import BenchResult, peak_rss_mib
from umarvel_cli.bench.table import TableSpec

SIZES = {"quick": 50_000, "default": 1_000_000}
OURS = "umarvel prepare mbeir pool (parse+check+dedupe+write)"
TABLE = TableSpec(
    label="reader",
    metric="rows_per_s",
    baseline="pyarrow.json.read_json (threads)",
    headline=OURS,
    columns=("seconds", "peak_mib"),
)
_WORDS = [
    "a",
    "man",
    "woman",
    "dog",
    "red",
    "blue",
    "small",
    "large",
    "photo",
    "of",
    "the",
    "on",
    "in",
    "with",
    "near",
    "street",
    "table",
    "news",
    "fashion",
]


def write_pool(path: Path, rows: int, seed: int = 0) -> int:
    """A candidate pool like the real ones (key order txt, img_path, modality, did, src_content); bytes."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for n in range(rows):
            modality = ("image", "text", "image,text")[n % 3]
            text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 30))).capitalize() + "."
            rec = {
                "txt": text if "text" in modality else None,
                "img_path": f"mbeir_images/bench_images/{n // 1000:04d}/{n}.jpg"
                if "image" in modality
                else None,
                "modality": modality,
                "did": f"{n % 10}:{n}",
                "src_content": json.dumps({"id": n}) if n % 4 == 0 else None,
            }
            fh.write(json.dumps(rec) + "\n")
    return path.stat().st_size


def _peak_mib() -> float:
    return peak_rss_mib()


def _current_mib() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return _peak_mib()


def _ours(path: str, out: str, line_parser_only: bool = False) -> tuple[float, int, float, float | None]:
    """(seconds, rows, peak MiB, MiB per 1M rows that the id index grows by in the file's second half)."""
    from umarvel_cli.data.mbeir import pool_block
    from umarvel_cli.data.mbeir.layout import MBEIRInputs, SourceFile
    from umarvel_cli.data.mbeir.reader import MBEIRPreparer, PhaseProgress
    from umarvel_cli.data.mbeir.tasks import load_mbeir_spec

    class Sampler(PhaseProgress):
        def __init__(self) -> None:
            super().__init__()
            self.samples: list[tuple[int, float]] = []

        def advance(self, nbytes: int, nlines: int) -> None:
            self.lines += nlines
            self.samples.append((self.lines, _current_mib()))

    if line_parser_only:
        pool_block.parse_block_arrow = lambda lines, use_threads=True: None
    source = SourceFile(kind="pool", path=Path(path), rel=Path(path).name, pool="bench_pool")
    inputs = MBEIRInputs(Path(path).parent, source, (source,), (), (), ())
    start = time.perf_counter()
    preparer = MBEIRPreparer(load_mbeir_spec(), inputs, Path(out), "fail", 100_000, False, False)
    preparer.progress = sampler = Sampler()
    preparer.read_pool(source, keep_ids=True)
    rows = preparer.sinks["pools"].close()
    preparer.sinks["candidates"].close()
    seconds = time.perf_counter() - start
    (mid_lines, mid_mib), (end_lines, end_mib) = (
        sampler.samples[len(sampler.samples) // 2],
        sampler.samples[-1],
    )
    growth = (end_mib - mid_mib) * 1_000_000 / (end_lines - mid_lines) if end_lines > mid_lines else None
    return seconds, rows, _peak_mib(), growth


def _pyarrow(path: str, threads: bool) -> tuple[float, int, float, float | None]:
    import pyarrow.json as pj

    start = time.perf_counter()
    table = pj.read_json(path, read_options=pj.ReadOptions(use_threads=threads, block_size=8 << 20))
    return time.perf_counter() - start, table.num_rows, _peak_mib(), None


def _in_fresh_process(fn, *args) -> tuple[float, int, float, float | None]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def run(size: str = "default") -> BenchResult:
    n = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="umarvel-bench-prepare-") as tmp:
        path = Path(tmp) / "mbeir_bench_cand_pool.jsonl"
        size_bytes = write_pool(path, n)
        out = Path(tmp) / "out"
        measured = {
            OURS: _in_fresh_process(_ours, str(path), str(out)),
            "umarvel, per-line parser only": _in_fresh_process(_ours, str(path), str(out) + "-lines", True),
            "pyarrow.json.read_json (threads)": _in_fresh_process(_pyarrow, str(path), True),
            "pyarrow.json.read_json (1 thread)": _in_fresh_process(_pyarrow, str(path), False),
        }
    rows = []
    for name, (seconds, count, peak, growth) in measured.items():
        if count != n:
            raise RuntimeError(f"{name} read {count} rows, expected {n}")
        rows.append(
            {
                "reader": name,
                "rows": count,
                "seconds": seconds,
                "rows_per_s": count / seconds,
                "peak_mib": peak,
                "mib_per_1m_rows": growth,
            }
        )
    ours, lines, threaded, single = (r["rows_per_s"] for r in rows)
    per_million = rows[0]["mib_per_1m_rows"]
    summary = (
        f"{n:,} pool rows ({size_bytes / 2**20:,.0f} MiB): ours {ours:,.0f} rows/s "
        f"(per-line parser {lines:,.0f}), pyarrow.json {threaded:,.0f} rows/s (threads) / "
        f"{single:,.0f} (1 thread); ratio ours/pyarrow {ours / threaded:.2f} (threads), "
        f"{ours / single:.2f} (1 thread); peak {rows[0]['peak_mib']:,.0f} MiB ours vs "
        f"{rows[2]['peak_mib']:,.0f} MiB pyarrow"
    )
    if per_million is not None:  # None when the file is too small to measure growth
        summary += (
            f"; ours grows {per_million:,.0f} MiB per 1M distinct candidates in the file's second half "
            f"(~{per_million * 5.6 / 1024:.1f} GiB of ids for 5.6M)"
        )
    return BenchResult(
        name="prepare",
        summary=summary,
        rows=rows,
        extra={
            "pool_rows": n,
            "pool_bytes": size_bytes,
            "ratio_vs_pyarrow_threads": ours / threaded,
            "ratio_line_parser_vs_pyarrow_threads": lines / threaded,
            "mib_per_million_candidates": per_million,
            "ratio_vs_pyarrow_1_thread": ours / single,
        },
    )
