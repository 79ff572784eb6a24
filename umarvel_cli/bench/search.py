"""Benchmark: exact top-100 by streaming candidate shards vs one big torch matmul + topk.

Both run on the same data in the same run, each in a fresh process so its peak memory is its own:
- ours: `exact_search` reading the candidate Parquet shards block by block (I/O and decoding
  included in its time), with the running top-k merge;
- baseline: the whole candidate matrix already in memory (loading not timed), one matmul + topk
  per block of queries. It has to block queries: 10k x 1M float32 scores alone would be 40 GB.
Sizes: "default" is 1M x 256 candidates and 2,000 queries (the 10k-query version takes ~7 min per
method on 2 CPU cores at ~25 GFLOP/s, too long for a routine benchmark; UMARVEL_BENCH_QUERIES and
UMARVEL_BENCH_REPEATS change the query count and best-of-N); "quick" is 100k x 256 and 500 queries,
where reading the shards weighs more against only 500 queries' compute.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from umarvel_cli.bench import BenchResult, finish_generated_embeddings, peak_rss_mib
from umarvel_cli.bench.table import TableSpec

SIZES = {"quick": (100_000, 500), "default": (1_000_000, 2_000)}
REPEATS = {"quick": 3, "default": 2}  # best of N: the shared 2-core box is noisy
DIM, K = 256, 100
SHARD_ROWS = 131_072
COMPRESSION = "none"  # as `umarvel embed` writes embeddings: floats barely compress, reading is 2x faster
BASELINE_QUERY_BLOCK = 1024
TABLE = TableSpec(
    label="method",
    metric="queries/s",
    baseline=(f"in-memory matmul+topk (baseline, {BASELINE_QUERY_BLOCK}-query blocks)",
              "cuda: candidates resident on the GPU (baseline)"),
    headline="streaming shards (ours)",
    group=("device",),
    columns=("seconds", "cpu seconds", "peak RSS MiB"),
)  # fmt: skip


def _peak_rss_mb() -> float:
    return peak_rss_mib()


def _write_data(root: Path, n: int, q: int) -> None:
    import pyarrow as pa

    from umarvel_cli.artifacts import ShardWriter, embeddings_schema
    from umarvel_cli.retrieval.embeddings import normalize_rows

    rng = np.random.default_rng(0)
    schema = embeddings_schema(DIM)
    with ShardWriter(
        root / "cands", "embeddings", schema, rows_per_shard=SHARD_ROWS, compression=COMPRESSION
    ) as w:
        for start in range(0, n, SHARD_ROWS):
            rows = min(SHARD_ROWS, n - start)
            x = normalize_rows(rng.standard_normal((rows, DIM), dtype=np.float32))
            ids = pa.array([f"c{i}" for i in range(start, start + rows)])
            vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM)
            w.write_batch(pa.RecordBatch.from_arrays([ids, vec], schema=schema))
    finish_generated_embeddings(root / "cands", n)
    np.save(root / "queries.npy", normalize_rows(rng.standard_normal((q, DIM), dtype=np.float32)))


def _ours(
    root: str, query_block: int, repeats: int, device: str = "cpu"
) -> tuple[float, float, float, float, np.ndarray]:
    from umarvel_cli.retrieval.embeddings import open_embeddings
    from umarvel_cli.retrieval.exact import exact_search

    q = np.load(Path(root) / "queries.npy")
    cands = open_embeddings(Path(root) / "cands")
    before = _peak_rss_mb()
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        res = exact_search(q, cands.iter_blocks(rows=65_536), K, query_block=query_block, device=device)
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    return best, best_cpu, before, _peak_rss_mb(), res.indices


def _baseline(
    root: str, repeats: int, device: str = "cpu"
) -> tuple[float, float, float, float, np.ndarray, float]:
    """(best seconds, best CPU seconds, RSS before, peak RSS, top-k indices, seconds to load c)."""
    import torch

    from umarvel_cli.retrieval.embeddings import open_embeddings

    q = torch.from_numpy(np.load(Path(root) / "queries.npy")).to(device)
    t = time.perf_counter()
    _, c_np = open_embeddings(Path(root) / "cands").read()
    c = torch.from_numpy(c_np).to(device)
    if device != "cpu":
        torch.cuda.synchronize()
    load = time.perf_counter() - t
    before = _peak_rss_mb()
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, cpu = time.perf_counter(), time.process_time()
        out = []
        for s in range(0, len(q), BASELINE_QUERY_BLOCK):
            scores = q[s : s + BASELINE_QUERY_BLOCK] @ c.T
            out.append(scores.topk(K, dim=1).indices)
            del scores
        idx = torch.cat(out).cpu().numpy()
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - cpu)
    return best, best_cpu, before, _peak_rss_mb(), idx, load


def _in_fresh_process(fn, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run(size: str = "default") -> BenchResult:
    n, q = SIZES[size]
    q = int(os.environ.get("UMARVEL_BENCH_QUERIES", q))
    with tempfile.TemporaryDirectory(prefix="umarvel-bench-search-") as tmp:
        root = Path(tmp)
        _write_data(root, n, q)
        reps = int(os.environ.get("UMARVEL_BENCH_REPEATS", REPEATS[size]))
        base_s, base_cpu, base_rss0, base_rss, base_idx, base_load = _in_fresh_process(
            _baseline, str(root), reps
        )
        ours_s, ours_cpu, ours_rss0, ours_rss, ours_idx = _in_fresh_process(_ours, str(root), 1024, reps)
        gpu = _cuda_rows(root, q, reps)
    agree = float((base_idx == ours_idx).mean())
    ratio = base_s / ours_s
    rows = [
        _row("streaming shards (ours)", q, ours_s, ours_cpu, ours_rss0, ours_rss),
        _row(f"in-memory matmul+topk (baseline, {BASELINE_QUERY_BLOCK}-query blocks)", q, base_s, base_cpu,
             base_rss0, base_rss, **{"load seconds (not timed)": base_load}),
    ]  # fmt: skip
    summary = (
        f"exact top-{K} over {n:,} x {DIM} candidates, {q:,} queries: throughput ratio ours/baseline "
        f"{ratio:.2f}x (goal >= 0.8x; in CPU time {base_cpu / ours_cpu:.2f}x); peak RSS {ours_rss:,.0f} vs {base_rss:,.0f} MiB; "
        f"same ids at {100 * agree:.3f}% of (query, rank) slots"
    )
    extra = {"candidates": n, "queries": q, "dim": DIM, "k": K, "ratio": ratio, "agreement": agree}
    extra["cpu_ratio"] = base_cpu / ours_cpu
    extra["best_of"] = int(os.environ.get("UMARVEL_BENCH_REPEATS", REPEATS[size]))
    if gpu:
        rows += gpu
        extra["cuda_ratio"] = gpu[1]["seconds"] / gpu[0]["seconds"]
        with_load = gpu[1]["seconds"] + gpu[1]["load seconds (not timed)"]
        extra["cuda_ratio_with_load"] = with_load / gpu[0]["seconds"]
        summary += (
            f" | cuda: ours/baseline {extra['cuda_ratio']:.2f}x ({q / gpu[0]['seconds']:,.0f} queries/s); "
            f"counting the baseline's loading of the candidates {extra['cuda_ratio_with_load']:.2f}x"
        )
    return BenchResult(name="search", summary=summary, rows=rows, extra=extra)


def _cuda_rows(root: Path, q: int, reps: int) -> list[dict]:
    """The same comparison on CUDA (streaming shards to the GPU vs candidates resident on it), if any."""
    import torch

    if not torch.cuda.is_available():
        return []
    base = _in_fresh_process(_baseline, str(root), reps, "cuda")
    ours = _in_fresh_process(_ours, str(root), 4096, reps, "cuda")
    same = float((base[4] == ours[4]).mean())
    return [
        _row("cuda: streaming shards (ours)", q, *ours[:4], device="cuda", **{"same ids": same}),
        _row("cuda: candidates resident on the GPU (baseline)", q, *base[:4], device="cuda",
             **{"same ids": same, "load seconds (not timed)": base[5]}),
    ]  # fmt: skip


def _row(
    method: str,
    queries: int,
    seconds: float,
    cpu: float,
    rss_before: float,
    rss_peak: float,
    device: str = "cpu",
    **more,
) -> dict:
    return {"device": device, "method": method, "seconds": seconds, "queries/s": queries / seconds, "cpu seconds": cpu,
            "peak RSS MiB": rss_peak, "RSS before search MiB": rss_before, **more}  # fmt: skip
