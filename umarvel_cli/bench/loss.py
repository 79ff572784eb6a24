"""InfoNCE forward+backward: peak extra memory and time of the fused loss against the plain one.

On CUDA (when available) the Triton kernels run on bf16 inputs at B ∈ {1k, 4k, 16k}, N = 6·B,
d ∈ {1536, 3584} ("quick": the smallest shape only). Memory is `torch.cuda.max_memory_allocated`
during the step minus what was allocated before it (the inputs), time the median of CUDA-event
timed steps. "workspace" subtracts the gradients dq and dc, which every implementation returns.

On CPU the chunked torch reference runs against the plain loss (fp32). tracemalloc does not see
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

CPU_SHAPES = {
    "quick": [(256, 1536, 128)],
    "default": [(512, 3072, 256), (1024, 6144, 256), (2048, 12288, 512)],
}
CUDA_SHAPES = {
    "quick": [(1024, 6144, 1536)],
    "default": [(b, 6 * b, d) for b in (1024, 4096, 16384) for d in (1536, 3584)],
}
MIB = 2**20


def _inputs(b: int, n: int, d: int, dtype, device):
    import torch
    import torch.nn.functional as F

    g = torch.Generator(device=device).manual_seed(0)
    q = F.normalize(torch.randn(b, d, generator=g, device=device), dim=-1).to(dtype)
    c = F.normalize(torch.randn(n, d, generator=g, device=device), dim=-1).to(dtype)
    labels = torch.arange(b, device=device) * (n // b)
    tau = torch.tensor(0.05, device=device)
    return q.requires_grad_(True), c.requires_grad_(True), labels, tau.requires_grad_(True)


def _step(impl: str, q, c, labels, tau) -> None:
    from umarvel_cli.losses.infonce import info_nce_loss

    info_nce_loss(q, c, labels, tau, impl=impl).backward()
    q.grad = c.grad = tau.grad = None


# ---- CPU: one subprocess per measurement -------------------------------------------------------


def _proc_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))


def measure_cpu(impl: str, b: int, n: int, d: int, repeats: int = 2) -> dict:
    """Run inside the measuring subprocess: peak extra RSS (MiB) and median seconds of one step."""
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
    return {"peak_extra_mib": peak / 1024, "seconds": statistics.median(times)}


def _cpu_subprocess(impl: str, b: int, n: int, d: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    code = f"import json; from umarvel_cli.bench.loss import measure_cpu; print(json.dumps(measure_cpu({impl!r}, {b}, {n}, {d})))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _run_cpu(size: str) -> BenchResult:
    from umarvel_cli.console import track

    rows = []
    for b, n, d in track(CPU_SHAPES[size], len(CPU_SHAPES[size]), "loss bench (cpu)", unit="shapes"):
        plain = _cpu_subprocess("plain", b, n, d)
        ref = _cpu_subprocess("chunked", b, n, d)
        rows.append(
            {
                "device": "cpu",
                "B": b,
                "N": n,
                "d": d,
                "plain_MiB": plain["peak_extra_mib"],
                "chunked_MiB": ref["peak_extra_mib"],
                "mem_ratio": ref["peak_extra_mib"] / plain["peak_extra_mib"],
                "plain_s": plain["seconds"],
                "chunked_s": ref["seconds"],
                "time_ratio": ref["seconds"] / plain["seconds"],
            }
        )
    last = rows[-1]
    summary = (
        f"cpu, chunked torch reference vs plain at B={last['B']} N={last['N']} d={last['d']} (fp32): "
        f"peak extra memory {last['mem_ratio']:.2f}x ({last['chunked_MiB']:.0f} vs {last['plain_MiB']:.0f} MiB), "
        f"time {last['time_ratio']:.2f}x; no CUDA here, so the Triton kernels were not timed"
    )
    return BenchResult(name="loss", summary=summary, rows=rows, extra={"method": "subprocess RSS high-water"})


# ---- CUDA: in-process, allocator statistics ----------------------------------------------------


def _cuda_measure(impl: str, b: int, n: int, d: int, repeats: int) -> dict:
    import torch

    q, c, labels, tau = _inputs(b, n, d, torch.bfloat16, "cuda")
    grads_mib = (q.numel() + c.numel()) * q.element_size() / MIB
    try:
        _step(impl, q, c, labels, tau)  # warm-up: triton compilation, cuBLAS handles
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(impl, q, c, labels, tau)
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / MIB
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            _step(impl, q, c, labels, tau)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    except torch.cuda.OutOfMemoryError:
        return {
            "peak_extra_mib": float("nan"),
            "workspace_mib": float("nan"),
            "ms": float("nan"),
            "oom": True,
        }
    finally:
        del q, c
        torch.cuda.empty_cache()
    return {
        "peak_extra_mib": peak,
        "workspace_mib": peak - grads_mib,
        "ms": statistics.median(times),
        "oom": False,
    }


def _run_cuda(size: str) -> BenchResult:
    import torch

    from umarvel_cli.console import track

    rows = []
    repeats = 3 if size == "quick" else 5
    for b, n, d in track(CUDA_SHAPES[size], len(CUDA_SHAPES[size]), "loss bench (cuda)", unit="shapes"):
        plain = _cuda_measure("plain", b, n, d, repeats)
        fused = _cuda_measure("triton", b, n, d, repeats)
        rows.append(
            {
                "device": torch.cuda.get_device_name(),
                "B": b,
                "N": n,
                "d": d,
                "plain_MiB": plain["peak_extra_mib"],
                "triton_MiB": fused["peak_extra_mib"],
                "mem_ratio": fused["peak_extra_mib"] / plain["peak_extra_mib"],
                "workspace_ratio": fused["workspace_mib"] / plain["workspace_mib"],
                "plain_ms": plain["ms"],
                "triton_ms": fused["ms"],
                "time_ratio": fused["ms"] / plain["ms"],
            }
        )
    last = rows[-1]
    summary = (
        f"{last['device']}, triton vs plain (bf16) at B={last['B']} N={last['N']} d={last['d']}: peak extra "
        f"memory {last['mem_ratio']:.3f}x (workspace {last['workspace_ratio']:.3f}x), time {last['time_ratio']:.2f}x"
    )
    return BenchResult(
        name="loss", summary=summary, rows=rows, extra={"method": "torch.cuda peak allocator stats"}
    )


def run(size: str = "default") -> BenchResult:
    """The CUDA shapes with the Triton kernels when CUDA and triton are there, the CPU reference otherwise."""
    import torch

    from umarvel_cli.losses.infonce import triton_available

    if torch.cuda.is_available() and triton_available():
        return _run_cuda(size)
    return _run_cpu(size)
