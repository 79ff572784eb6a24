"""Benchmark: `rerank score`'s scoring path against the released code's, same model, same pairs.

- ours: what `umarvel rerank score` runs (`Reranker.encode_pairs(defer_decode=True)` then
  `Reranker.score_inputs`): length-bucketed batches, one forward of the backbone, the two LM-head
  rows of "Yes" and "No" at each row's answer position;
- full-vocabulary forward per pair: one pair at a time, the whole model (every position through
  the full LM head), P(Yes) read from the answer position's logits;
- released (baseline, B18 of the spec): one pair at a time through `generate()`, P(Yes) read from
  the first generated step's logits. The released call asks for up to 128 new tokens; a trained
  reranker stops after "Yes"/"No" and the end-of-turn token, so generation is capped at those
  GENERATED_TOKENS (a random model would otherwise run all 128 and flatter our ratio).

Pairs: generated text queries with instructions, each against CANDIDATES_PER_QUERY candidates of a
mixed pool (captions, passages, JPEG images, image+text; `bench.embed.bench_records`), as a top-k
list is scored. Each path: best of REPEATS after a warm-up; wall and CPU time; peak extra memory
above the loaded model. On CPU every path runs in a fresh process and memory is the resident
high-water mark, reset after the warm-up; on CUDA the three share one process and memory is the
allocator's peak, reset per path. The three P(Yes) vectors are compared (they agree to 1e-4 on CPU).

CPU: the tiny random Qwen2-VL reranker (`init-model --kind reranker`), one torch thread per path:
the tiny model's ops are too small to split, and on a shared box two threads mostly spin waiting
for each other (measured: 15x the CPU time of one thread at load 10), so the ratio is the per-pair
work saved. CUDA (when available): a random generative model of the real Qwen2-VL-2B size in bf16
(the real vocabulary: the full LM head is where the naive paths spend time and memory).
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from umarvel_cli.bench import BenchResult, peak_rss_mib
from umarvel_cli.bench.table import TableSpec

# pairs scored per path: queries x CANDIDATES_PER_QUERY
SIZES = {"tiny": 8, "quick": 128, "default": 512}
GPU_SIZES = {"tiny": 16, "quick": 64, "default": 256}  # bounded by the one-pair-at-a-time paths
REPEATS = {"tiny": 1, "quick": 2, "default": 3}
GPU_REPEATS = {"tiny": 1, "quick": 1, "default": 1}
CANDIDATES_PER_QUERY = 8
BATCH_SIZE = 16  # `rerank score`'s default
GENERATED_TOKENS = 2  # "Yes"/"No" then the end-of-turn token
CPU_THREADS = 1
WARM_UP_PAIRS = 4
PATHS = (
    ("ours", "umarvel rerank score (batched, 2 head rows)"),
    ("forward", "full-vocabulary forward per pair"),
    ("generate", "released: generate() per pair (baseline)"),
)
TABLE = TableSpec(
    label="method",
    metric="pairs/s",
    baseline="released: generate() per pair (baseline)",
    headline="umarvel rerank score (batched, 2 head rows)",
    group=("device",),
    columns=("seconds", "CPU s", "peak extra MiB", "max P(Yes) diff vs ours"),
)
QUERY_WORDS = ["red", "blue", "small", "old", "dog", "car", "house", "river", "street", "tree", "two", "man"]
INSTRUCTIONS = [
    "Find an image that matches the caption.",
    "Retrieve a passage that answers the question.",
    "Find a caption for the picture.",
]


def bench_pairs(n: int, image_dir: Path, seed: int = 0) -> list[tuple[Any, Any]]:
    """n (query, candidate) pairs: n / CANDIDATES_PER_QUERY text queries, each against its own
    candidates from a mixed pool."""
    from umarvel_cli.bench.embed import bench_records
    from umarvel_cli.data.records import Record

    rng = random.Random(seed)
    candidates = bench_records(n, image_dir, seed)
    pairs = []
    for i, cand in enumerate(candidates):
        if i % CANDIDATES_PER_QUERY == 0:
            words = " ".join(rng.choice(QUERY_WORDS) for _ in range(rng.randint(3, 10)))
            query = Record(f"q{i // CANDIDATES_PER_QUERY}", words, None, rng.choice(INSTRUCTIONS))
        pairs.append((query, cand))
    return pairs


def _proc_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))


class _PeakMemory:
    """Peak extra memory (MiB) of what runs between `start()` and `stop()`."""

    def __init__(self, device: Any) -> None:
        self.device = device

    def start(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif Path("/proc/self/clear_refs").exists():
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the resident high-water mark (VmHWM) to the current RSS
            self.base = _proc_kib("VmRSS") * 1024
        else:  # no /proc: the lifetime peak, an upper bound
            self.base = 0

    def stop(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.base) / 2**20
        if Path("/proc/self/status").exists():
            return (_proc_kib("VmHWM") * 1024 - self.base) / 2**20
        return peak_rss_mib()


def naive_inputs(reranker: Any, pair: tuple[Any, Any]) -> dict[str, Any]:
    """One pair's model inputs, unbatched, as the model's own forward/generate takes them (it derives
    the M-RoPE positions itself)."""
    (item,) = reranker.encode_pairs([pair])
    inputs = reranker._inputs(reranker.collator([item]))
    inputs.pop("position_ids", None)
    inputs.pop("use_cache", None)
    return inputs


def p_yes_full_forward(reranker: Any, pairs: list[tuple[Any, Any]]) -> np.ndarray:
    """P(Yes) per pair from the whole model's logits (every position, full vocabulary), one at a time."""
    import torch

    out = np.zeros(len(pairs), dtype=np.float32)
    answers = [reranker.yes_id, reranker.no_id]
    for i, pair in enumerate(pairs):
        with torch.no_grad():
            logits = reranker.model(**naive_inputs(reranker, pair)).logits[0, -1].float()
        out[i] = float(torch.softmax(logits[answers], dim=-1)[0])
    return out


def p_yes_generate(
    reranker: Any, pairs: list[tuple[Any, Any]], new_tokens: int = GENERATED_TOKENS
) -> np.ndarray:
    """P(Yes) per pair as the released code read it: `generate()` one pair at a time, the first
    step's raw logits (B18)."""
    import torch

    out = np.zeros(len(pairs), dtype=np.float32)
    answers = [reranker.yes_id, reranker.no_id]
    pad = reranker.tokenizer.pad_token_id
    for i, pair in enumerate(pairs):
        with torch.no_grad():
            got = reranker.model.generate(
                **naive_inputs(reranker, pair),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=pad,
            )
        out[i] = float(torch.softmax(got.logits[0][0, answers].float(), dim=-1)[0])
    return out


def p_yes_ours(reranker: Any, pairs: list[tuple[Any, Any]]) -> np.ndarray:
    """P(Yes) per pair exactly as `rerank score` computes it."""
    items = reranker.encode_pairs(pairs, defer_decode=True)
    return reranker.score_inputs(items, BATCH_SIZE)


SCORERS = {"ours": p_yes_ours, "forward": p_yes_full_forward, "generate": p_yes_generate}


def _real_size_reranker(device: Any) -> Any:
    """A random generative model of the real Qwen2-VL-2B size in bf16, as a Reranker."""
    import torch

    from umarvel_cli.bench.real_size import qwen2_vl_2b_config, real_size_parts
    from umarvel_cli.models.inputs.image_processor import build_image_processor
    from umarvel_cli.models.registry import attention_implementation, get_family
    from umarvel_cli.models.reranker import Reranker

    tok, ucfg, mcfg = real_size_parts(qwen2_vl_2b_config())
    ucfg.attention = "causal"
    family = get_family("qwen2-vl")
    torch.manual_seed(0)
    with torch.device(device):
        model = family.generation_cls()(mcfg).to(torch.bfloat16)
    model.set_attn_implementation(attention_implementation(device))
    model.eval()
    return Reranker(model, tok, build_image_processor(family, ucfg.min_pixels, ucfg.max_pixels), ucfg)


def measure(
    paths: tuple[str, ...], model_dir: str | None, data_dir: str, n: int, repeats: int, device: str
) -> dict[str, dict]:
    """Run inside the measuring process: per path, best wall and CPU seconds, peak extra MiB and P(Yes)."""
    import torch

    from umarvel_cli.models.reranker import Reranker

    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(CPU_THREADS)
    if model_dir is None:
        reranker = _real_size_reranker(dev)
    else:
        reranker = Reranker.from_pretrained(model_dir, device=dev, dtype=torch.float32)
    pairs = bench_pairs(n, Path(data_dir))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    memory = _PeakMemory(dev)
    out = {}
    for path in paths:
        score = SCORERS[path]
        score(reranker, pairs[:WARM_UP_PAIRS])  # lazy inits, allocator caches, kernel selection
        best, best_cpu, peak, p_yes = float("inf"), float("inf"), 0.0, None
        for _ in range(repeats):
            memory.start()
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            p_yes = score(reranker, pairs)
            sync()
            best, best_cpu = min(best, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
            peak = max(peak, memory.stop())
        out[path] = {"seconds": best, "cpu_seconds": best_cpu, "peak_mib": peak, "p_yes": p_yes}
    return out


def _in_fresh_process(*args: Any) -> dict[str, dict]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure, *args).result()


def compare(model_dir: str | None, root: Path, n: int, repeats: int, device: str) -> dict[str, dict]:
    """Every path on the same n pairs. On CPU each path in its own process (its resident peak is its
    own); on CUDA all in one (the allocator's peak is exact per path, and the 2B model is built once)."""
    args = (model_dir, str(root / "images"), n, repeats, device)
    if device == "cuda":
        return _in_fresh_process(tuple(key for key, _ in PATHS), *args)
    got: dict[str, dict] = {}
    for key, _ in PATHS:
        got.update(_in_fresh_process((key,), *args))
    return got


def rows_for(got: dict[str, dict], n: int, device: str) -> list[dict[str, Any]]:
    ours = got["ours"]["p_yes"]
    return [
        {
            "device": device,
            "method": method,
            "pairs": n,
            "seconds": got[key]["seconds"],
            "pairs/s": n / got[key]["seconds"],
            "CPU s": got[key]["cpu_seconds"],
            "peak extra MiB": got[key]["peak_mib"],
            "max P(Yes) diff vs ours": float(np.abs(got[key]["p_yes"] - ours).max()),
        }
        for key, method in PATHS
    ]


def run_gpu(size: str) -> BenchResult:
    """CUDA only: the three paths on a random Qwen2-VL-2B-sized reranker in bf16 (what
    scripts/device_check.sh runs; no CPU rows)."""
    import torch

    if not torch.cuda.is_available():
        return BenchResult("rerank", "skipped: no CUDA device", [], {})
    n = GPU_SIZES[size]
    with tempfile.TemporaryDirectory(prefix="umarvel-bench-rerank-cuda-") as tmp:
        got = compare(None, Path(tmp), n, GPU_REPEATS[size], "cuda")
    name = torch.cuda.get_device_name()
    t = {key: got[key]["seconds"] for key, _ in PATHS}
    rows = rows_for(got, n, f"cuda ({name}), Qwen2-VL-2B-sized bf16")
    ratio = t["generate"] / t["ours"]
    summary = (
        f"{name}, Qwen2-VL-2B-sized random reranker (bf16), {n:,} pairs: ours {n / t['ours']:,.1f} pairs/s vs "
        f"released generate() per pair {n / t['generate']:,.1f} pairs/s = {ratio:.2f}x (vs a full-vocabulary "
        f"forward per pair {t['forward'] / t['ours']:.2f}x); peak extra {got['ours']['peak_mib']:,.0f} vs "
        f"{got['generate']['peak_mib']:,.0f} MiB (forward {got['forward']['peak_mib']:,.0f}); max |P(Yes) diff| "
        f"{max(r['max P(Yes) diff vs ours'] for r in rows):.1e} (bf16)"
    )
    extra = {"pairs": n, "seconds": t, "ratio": ratio, "forward_ratio": t["forward"] / t["ours"]}
    return BenchResult("rerank", summary, rows, {**extra, "best_of": GPU_REPEATS[size]})


def run(size: str = "default") -> BenchResult:
    import torch

    from umarvel_cli.models.tiny import init_tiny_model

    n, repeats = SIZES[size], REPEATS[size]
    with tempfile.TemporaryDirectory(prefix="umarvel-bench-rerank-") as tmp:
        root = Path(tmp)
        model_dir = init_tiny_model("tiny-qwen2-vl", root / "rr", seed=0, kind="reranker")
        got = compare(str(model_dir), root, n, repeats, "cpu")
    rows = rows_for(got, n, f"cpu ({CPU_THREADS} torch thread), tiny Qwen2-VL reranker")
    t = {key: got[key]["seconds"] for key, _ in PATHS}
    ratio, forward_ratio = t["generate"] / t["ours"], t["forward"] / t["ours"]
    diff = max(r["max P(Yes) diff vs ours"] for r in rows)
    summary = (
        f"{n:,} pairs ({n // CANDIDATES_PER_QUERY} queries x {CANDIDATES_PER_QUERY} mixed candidates), tiny "
        f"reranker on CPU: ours {n / t['ours']:,.1f} pairs/s vs released generate() per pair "
        f"{n / t['generate']:,.1f} pairs/s = {ratio:.2f}x (vs a full-vocabulary forward per pair "
        f"{forward_ratio:.2f}x); peak extra {got['ours']['peak_mib']:,.0f} vs {got['generate']['peak_mib']:,.0f} "
        f"MiB; max |P(Yes) diff| {diff:.1e}"
    )
    extra = {
        "pairs": n,
        "candidates_per_query": CANDIDATES_PER_QUERY,
        "batch_size": BATCH_SIZE,
        "generated_tokens": GENERATED_TOKENS,
        "best_of": repeats,
        "seconds": t,
        "ratio": ratio,
        "forward_ratio": forward_ratio,
        "max_abs_diff": diff,
    }
    result = BenchResult(name="rerank", summary=summary, rows=rows, extra=extra)
    if torch.cuda.is_available():  # as `bench embed`: the GPU comparison added where there is one
        gpu = run_gpu(size)
        result.rows += gpu.rows
        result.summary += " | " + gpu.summary
        result.extra["gpu"] = gpu.extra
    return result
