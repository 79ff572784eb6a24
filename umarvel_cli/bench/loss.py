"""InfoNCE forward+backward: peak extra memory and time of the fused loss against the plain one.

On CUDA (when available) chunked, eager, the Triton kernels and the hybrid backend run on bf16 inputs at B ∈ {1k, 4k, 16k}, N = 6·B,
d ∈ {1536, 3584} ("quick": the smallest shape only). Memory is `torch.cuda.max_memory_allocated`
during the step minus what was allocated before it (the inputs), time the median of CUDA-event
timed steps. "workspace" subtracts the gradients dq and dc, which every implementation returns.

On CPU the torch implementations (chunked recomputation, eager row blocks) run against the plain
loss (fp32). tracemalloc does not see
torch's allocations, so each measurement runs in a fresh subprocess with a fixed glibc mmap
threshold (large blocks are mmapped and go back to the OS when freed, so RSS follows live memory);
the process resets its RSS high-water mark (/proc/self/clear_refs = 5) after building the inputs
and one warm-up step, and the peak extra memory is VmHWM minus VmRSS at that point.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time

from umarvel_cli.bench import BenchResult
from umarvel_cli.bench.table import TableSpec

CPU_SHAPES = {
    "quick": [(256, 1536, 128)],
    "default": [(512, 3072, 256), (1024, 6144, 256), (2048, 12288, 512)],
}
CUDA_SHAPES = {
    "quick": [(1024, 6144, 1536)],
    "default": [(b, 6 * b, d) for b in (1024, 4096, 16384) for d in (1536, 3584)],
}
MIB = 2**20
CPU_IMPLS = ("chunked", "eager")


def _inputs(b: int, n: int, d: int, dtype, device):
    import torch
    import torch.nn.functional as F

    g = torch.Generator(device=device).manual_seed(0)
    q = F.normalize(torch.randn(b, d, generator=g, device=device), dim=-1).to(dtype)
    c = F.normalize(torch.randn(n, d, generator=g, device=device), dim=-1).to(dtype)
    labels = torch.arange(b, device=device) * (n // b)
    tau = torch.tensor(0.05, device=device)
    return q.requires_grad_(True), c.requires_grad_(True), labels, tau.requires_grad_(True)


def _step(impl: str, q, c, labels, tau, tuning=None) -> None:
    from umarvel_cli.losses.infonce import info_nce_loss

    info_nce_loss(q, c, labels, tau, impl=impl, tuning=tuning).backward()
    q.grad = c.grad = tau.grad = None


def compare_rows(device: str, shapes: list, impls: tuple, measure) -> list[dict]:
    """One row per (shape, impl): `measure(impl, b, n, d)` against `measure("plain", b, n, d)`."""
    from umarvel_cli.console import track

    rows = []
    for b, n, d in track(shapes, len(shapes), f"loss bench ({device})", unit="shapes"):
        plain = measure("plain", b, n, d)
        for impl in impls:
            got = measure(impl, b, n, d)
            row = {"device": device, "B": b, "N": n, "d": d, "impl": impl,
                   "plain_MiB": plain["peak_extra_mib"], "impl_MiB": got["peak_extra_mib"],
                   "mem_ratio": got["peak_extra_mib"] / plain["peak_extra_mib"]}  # fmt: skip
            if "workspace_mib" in got:
                row["workspace_ratio"] = got["workspace_mib"] / plain["workspace_mib"]
            row.update(plain_ms=plain["ms"], impl_ms=got["ms"], time_ratio=got["ms"] / plain["ms"])
            if "loss" in got:
                row["loss_diff"] = abs(got["loss"] - plain["loss"])
            rows.append(row)
    return rows


# ---- CPU: one subprocess per measurement -------------------------------------------------------


def _proc_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))


def measure_cpu(impl: str, b: int, n: int, d: int, repeats: int = 2) -> dict:
    """Run inside the measuring subprocess: peak extra RSS (MiB) and median milliseconds of one step."""
    import torch

    q, c, labels, tau = _inputs(b, n, d, torch.float32, "cpu")
    _step(impl, q, c, labels, tau)  # warm-up: lazy inits and allocator caches
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = _proc_kib("VmRSS")
    start = time.perf_counter()
    _step(impl, q, c, labels, tau)
    times = [time.perf_counter() - start]
    peak = _proc_kib("VmHWM") - base
    for _ in range(repeats - 1):
        start = time.perf_counter()
        _step(impl, q, c, labels, tau)
        times.append(time.perf_counter() - start)
    return {"peak_extra_mib": peak / 1024, "ms": statistics.median(times) * 1e3}


def _cpu_subprocess(impl: str, b: int, n: int, d: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    code = f"import json; from umarvel_cli.bench.loss import measure_cpu; print(json.dumps(measure_cpu({impl!r}, {b}, {n}, {d})))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _run_cpu(size: str) -> BenchResult:

    rows = compare_rows("cpu", CPU_SHAPES[size], CPU_IMPLS, _cpu_subprocess)
    b, n, d = CPU_SHAPES[size][-1]
    summary = f"cpu, fp32, B={b} N={n} d={d}, vs plain: " + "; ".join(
        f"{r['impl']} peak extra memory {r['mem_ratio']:.2f}x ({r['impl_MiB']:.0f} vs {r['plain_MiB']:.0f} MiB) "
        f"time {r['time_ratio']:.2f}x"
        for r in rows[-len(CPU_IMPLS) :]
    )
    summary += "; no CUDA here, so the Triton kernels were not timed"
    return BenchResult(name="loss", summary=summary, rows=rows, extra={"method": "subprocess RSS high-water"})


# ---- CUDA: in-process, allocator statistics ----------------------------------------------------

CUDA_IMPLS = ("chunked", "eager", "triton", "hybrid")
TABLE = TableSpec(
    label="impl",
    metric="impl_ms",
    baseline="plain",
    headline="eager",
    group=("device", "B", "N", "d"),
    columns=("impl_MiB", "plain_MiB", "mem_ratio"),
    lower_is_better=True,
    baseline_metric="plain_ms",
)
# tried at the largest B for each d when size is "default": (BLOCK_M, BLOCK_N, BLOCK_D, warps, stages)
TILE_SWEEP = [
    (128, 64, 64, 8, 3),
    (128, 128, 64, 8, 3),
    (128, 256, 64, 8, 3),
    (128, 256, 64, 8, 4),
    (128, 256, 32, 8, 4),
    (256, 128, 64, 8, 3),
    (256, 128, 64, 8, 4),
]


def _cuda_time(fn, repeats: int) -> float:
    """Median milliseconds of `fn` over CUDA-event timed calls (after one untimed call)."""
    import torch

    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _cuda_measure(impl: str, b: int, n: int, d: int, repeats: int, tuning=None) -> dict:
    """Peak extra memory, workspace, median ms and loss of one step; `tuning` (a `KernelTuning`)
    overrides the kernels' chunk or tiles."""
    import torch

    from umarvel_cli.losses.infonce import info_nce_loss

    x = list(_inputs(b, n, d, torch.bfloat16, "cuda"))  # q, c, labels, tau; cleared to free them
    grads_mib = (x[0].numel() + x[1].numel()) * x[0].element_size() / MIB
    try:
        _step(impl, *x, tuning)  # warm-up: triton compilation, cuBLAS handles
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(impl, *x, tuning)
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / MIB
        ms = _cuda_time(lambda: _step(impl, *x, tuning), repeats)
        with torch.no_grad():
            loss = float(info_nce_loss(*x, impl=impl, tuning=tuning))
    except torch.cuda.OutOfMemoryError:
        nan = float("nan")
        return {"peak_extra_mib": nan, "workspace_mib": nan, "ms": nan, "loss": nan, "oom": True}
    finally:
        x.clear()
        torch.cuda.empty_cache()
    return {"peak_extra_mib": peak, "workspace_mib": peak - grads_mib, "ms": ms, "loss": loss, "oom": False}


def _cuda_breakdown(b: int, n: int, d: int, repeats: int) -> dict:
    """Where the fused loss's time goes: one cuBLAS q·cᵀ product vs the Triton forward alone."""
    import torch

    from kernels import infonce_triton

    x = list(_inputs(b, n, d, torch.bfloat16, "cuda"))
    with torch.no_grad():
        gemm = _cuda_time(lambda: torch.mm(x[0], x[1].T), repeats)
        fwd = _cuda_time(lambda: infonce_triton.forward_stats(*x[:3], x[3], None, None, 0), repeats)
    x.clear()
    torch.cuda.empty_cache()
    tflop = 2 * b * n * d / 1e12
    return {"gemm_ms": gemm, "gemm_tflops": tflop / gemm * 1e3, "triton_fwd_ms": fwd,
            "triton_fwd_tflops": tflop / fwd * 1e3}  # fmt: skip


def _tile_sweep(b: int, n: int, d: int, repeats: int) -> list[dict]:
    from umarvel_cli.losses.infonce import KernelTuning

    rows = []
    for bm, bn, bd, warps, stages in TILE_SWEEP:
        tuning = KernelTuning(tiles={"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_D": bd,
                                     "num_warps": warps, "num_stages": stages})  # fmt: skip
        try:
            got = _cuda_measure("triton", b, n, d, repeats, tuning)
            rows.append({"tiles": f"{bm}x{bn}x{bd} w{warps} s{stages}", "ms": got["ms"]})
        except Exception as e:  # a configuration that does not compile or fit is a result too
            rows.append({"tiles": f"{bm}x{bn}x{bd} w{warps} s{stages}", "ms": float("nan"),
                         "error": f"{type(e).__name__}: {str(e)[:120]}"})  # fmt: skip
    return rows


HYBRID_CHUNKS = (2048, 4096, 8192)  # candidates per cuBLAS product, tried at the largest B


def _hybrid_chunk_sweep(b: int, n: int, d: int, repeats: int) -> list[dict]:
    from umarvel_cli.losses.infonce import KernelTuning

    rows = []
    for chunk in HYBRID_CHUNKS:
        try:
            got = _cuda_measure("hybrid", b, n, d, repeats, KernelTuning(chunk=chunk))
            rows.append({"chunk": chunk, "ms": got["ms"], "peak_extra_mib": got["peak_extra_mib"]})
        except Exception as e:  # keep the table's other rows
            rows.append({"chunk": chunk, "error": f"{type(e).__name__}: {str(e)[:120]}"})
    return rows


def _run_cuda(size: str) -> BenchResult:
    import torch

    repeats = 3 if size == "quick" else 5
    name = torch.cuda.get_device_name()
    rows = compare_rows(name, CUDA_SHAPES[size], CUDA_IMPLS, lambda *a: _cuda_measure(*a, repeats))
    b, n, d = CUDA_SHAPES[size][-1]
    extra: dict = {"method": "torch.cuda peak allocator stats; workspace = peak extra minus dq and dc"}
    extra["breakdown"] = _cuda_breakdown(b, n, d, repeats)
    if size == "default":
        extra["hybrid_chunk_sweep"] = [
            {"B": sb, "N": sn, "d": sd, **row}
            for sb, sn, sd in CUDA_SHAPES[size]
            if sb == b
            for row in _hybrid_chunk_sweep(sb, sn, sd, repeats)
        ]
    if size == "default" and os.environ.get("UMARVEL_BENCH_TILE_SWEEP") == "1":  # tiles are chosen
        extra["tile_sweep"] = [
            {"B": sb, "N": sn, "d": sd, **row}
            for sb, sn, sd in CUDA_SHAPES[size]
            if sb == b
            for row in _tile_sweep(sb, sn, sd, repeats)
        ]
    last = {r["impl"]: r for r in rows[-len(CUDA_IMPLS) :]}
    summary = f"{name}, bf16, B={b} N={n} d={d}, vs plain: " + "; ".join(
        f"{impl} memory {r['mem_ratio']:.3f}x (workspace {r['workspace_ratio']:.3f}x) time {r['time_ratio']:.2f}x"
        for impl, r in last.items()
    )
    return BenchResult(name="loss", summary=summary, rows=rows, extra=extra)


def run(size: str = "default") -> BenchResult:
    """The CUDA shapes with the Triton kernels when CUDA and triton are there, the CPU reference otherwise."""
    import torch

    from umarvel_cli.losses.infonce import triton_available

    if torch.cuda.is_available() and triton_available():
        return _run_cuda(size)
    return _run_cpu(size)
