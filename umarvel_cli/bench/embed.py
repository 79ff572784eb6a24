"""Benchmark: our embed path vs a naive loop, same model, same data, same run.

- naive: batches in input order; per batch the stock Hugging Face processor (chat template,
  tokenizer, image processor, image-token expansion) runs on the batch, pads to the batch maximum,
  and the model runs under `torch.no_grad`;
- ours: `Embedder.encode` (each item formatted once: the chat template applied once per layout,
  one batched tokenizer call for truncation and one for the rendered texts, only image headers
  read, the first images decoded meanwhile by an otherwise idle core; batches bucketed by length
  and image size so padding is small; images decoded, resized and cut into raw uint8 patches per
  batch, the normalisation folded into the patch embedding; on CPU one batch per core at once, so
  decoding and model compute of different batches overlap; the vision attention with equal-size
  images in one SDPA call and no broadcast rotary multiplies; `torch.inference_mode`; the
  attention mask dropped when a batch has no padding).

Data: an M-BEIR-like mixed candidate pool read from JPEG files on disk: short captions, longer
passages, images of many sizes, image+text items, at the real default resolution cap
(max_pixels 300*28*28). The two outputs are compared (they must agree to 1e-5).

CPU: a tiny random Qwen2-VL, run twice: both paths with the process's default torch threads (one
per core; the naive loop uses them inside each op, ours runs one batch per core), then both with one
thread (no parallelism: what is left is per-item work saved). CPU time is reported beside wall time,
best of several repeats, with the load average: other jobs on the cores slow multi-threaded ops far
more than single-threaded ones (threads wait for each other), so read the default-threads ratio
only from a quiet box. Beside them, the work any exact path must do (decode, resize, the model on
our batches) is timed on one thread: naive over it is the ceiling of the ratio.

Beside them, the packed path: `Embedder.encode(pack=True)`, every batch one row of real tokens
with block-diagonal attention (`models/packing.py`), batches of PACK_TOKENS real tokens.

Every row reports its model FLOP rate: the FLOPs of the real (non-pad) tokens and images
(`bench/flops.py`, the same for every path: padding is not useful work) over its time; on CUDA
also MFU against the card's bf16 peak.

GPU (only when CUDA is available): a random-initialised model with the real Qwen2-VL-2B config in
bf16; reports items/s and MFU for all three paths.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from umarvel_cli.bench import BenchResult
from umarvel_cli.bench.flops import flop_rate_text, model_flops
from umarvel_cli.bench.table import TableSpec

SIZES = {"quick": 96, "default": 320}
GPU_SIZES = {"quick": 256, "default": 1024}
BATCH_SIZE = 32
# real tokens per packed row: with SDPA's block-diagonal mask the attention still computes every
# pair of the row, so rows stay a few thousand tokens (flash-attention's varlen kernels do not care)
PACK_TOKENS = 4096
# naive CPU time with N threads over its one-thread CPU time above which the box was contended
CONTENTION_LIMIT = 1.5
WORDS = [
    "a",
    "the",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "dog",
    "cat",
    "man",
    "woman",
    "child",
    "car",
    "bus",
    "train",
    "street",
    "house",
    "tree",
    "river",
    "mountain",
    "beach",
    "city",
    "night",
    "day",
    "photo",
    "picture",
    "of",
    "with",
    "on",
    "in",
    "near",
    "under",
    "running",
    "sitting",
    "standing",
    "holding",
    "two",
    "three",
    "people",
    "group",
    "old",
    "new",
    "white",
    "black",
    "yellow",
]


def _sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def bench_records(n: int, image_dir: Path, seed: int = 0) -> list[Any]:
    """A mixed pool: 35% captions, 15% passages, 35% images, 15% image+text; images written as JPEG."""
    from PIL import Image

    from umarvel_cli.data.records import Record

    rng = random.Random(seed)
    image_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        u = rng.random()
        text = image = None
        if u < 0.35:
            text = _sentence(rng, 4, 14)
        elif u < 0.50:
            text = _sentence(rng, 40, 90)
        if u >= 0.50:
            w, h = rng.choice([(64, 64), (120, 90), (224, 224), (320, 240), (480, 360), (640, 480)])
            pixels = np.random.default_rng(seed * 100_000 + i).integers(0, 255, (h, w, 3), dtype=np.uint8)
            path = image_dir / f"{i}.jpg"  # M-BEIR's images are JPEG files
            Image.fromarray(pixels).save(path, quality=90)
            image = path
            if u >= 0.85:
                text = _sentence(rng, 5, 20)
        out.append(Record(str(i), text, image))
    return out


def stock_processor(embedder: Any) -> Any:
    """transformers' Qwen2VLProcessor without a video processor (it needs torchvision otherwise)."""
    from transformers import Qwen2VLProcessor

    cls = type(
        "NoVideoQwen2VLProcessor",
        (Qwen2VLProcessor,),
        {"check_argument_for_proper_class": lambda self, name, arg: type(arg)},
    )
    return cls(
        image_processor=embedder.image_processor,
        tokenizer=embedder.tokenizer,
        video_processor=None,
        chat_template=embedder.tokenizer.chat_template,
    )


def naive_encode(
    embedder: Any, records: list[Any], batch_size: int, processor: Any
) -> tuple[np.ndarray, int]:
    """Fixed-order batches, stock preprocessing per batch, padding to the batch maximum, the stock
    transformers forward (Conv3d patch embedding, its own vision attention, 4-D mask always) under
    no_grad; mean pooling."""
    import torch
    from PIL import Image

    from umarvel_cli.models.attention import restore_vision_attention, speed_up_vision_attention
    from umarvel_cli.models.patch_embed import linearize_patch_embed, restore_patch_embed
    from umarvel_cli.models.pooling import pool

    fmt = embedder.formatter
    out, padded = [], 0
    restore_patch_embed(embedder.backbone)
    restore_vision_attention(embedder.backbone)
    try:
        for s in range(0, len(records), batch_size):
            chunk = records[s : s + batch_size]
            texts = [fmt.render(r, "candidate") for r in chunk]
            images = [Image.open(r.image).convert("RGB") for r in chunk if r.image is not None]
            batch = processor(text=texts, images=images or None, return_tensors="pt", padding=True)
            batch = {k: v.to(embedder.device) for k, v in batch.items()}
            padded += int(batch["input_ids"].numel())
            with torch.no_grad():
                hidden = embedder.backbone(**batch, use_cache=False).last_hidden_state
                mask = batch["attention_mask"]
                out.append(pool(hidden, mask, mask.bool(), "mean").float().cpu().numpy())
    finally:
        linearize_patch_embed(embedder.backbone)
        speed_up_vision_attention(embedder.backbone)
    return np.concatenate(out), padded


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, result): CPU time is the steadier number on a shared box."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _packed_encode(embedder: Any, records: list[Any], batch_size: int) -> np.ndarray:
    """The packed path: rows of PACK_TOKENS real tokens (the item cap raised to match)."""
    return embedder.encode(
        records, batch_size=max(batch_size, PACK_TOKENS), role="candidate", pack=True, max_tokens=PACK_TOKENS
    )


def _compare(embedder: Any, records: list[Any], batch_size: int, reps: int, sync: Callable[[], None]) -> dict:
    """Time the three paths (alternating, best of `reps`), check they agree, count tokens and FLOPs."""
    processor = stock_processor(embedder)
    naive_encode(embedder, records[:8], batch_size, processor)  # warm-up
    embedder.encode(records[:8], batch_size=batch_size, role="candidate")
    _packed_encode(embedder, records[:8], batch_size)
    t_naive = t_ours = t_packed = c_naive = c_ours = c_packed = float("inf")
    naive_out = ours_out = packed_out = None
    for _ in range(reps):
        t, c, naive_out = _timed(lambda: (naive_encode(embedder, records, batch_size, processor), sync()))
        t_naive, c_naive = min(t_naive, t), min(c_naive, c)
        t, c, ours_out = _timed(
            lambda: (embedder.encode(records, batch_size=batch_size, role="candidate"), sync())
        )
        t_ours, c_ours = min(t_ours, t), min(c_ours, c)
        t, c, packed_out = _timed(lambda: (_packed_encode(embedder, records, batch_size), sync()))
        t_packed, c_packed = min(t_packed, t), min(c_packed, c)
    (naive_vecs, naive_padded), _ = naive_out
    ours_vecs, _ = ours_out
    packed_vecs, _ = packed_out
    encoded = embedder.formatter.encode_many(records, "candidate")
    from umarvel_cli.models.batching import plan_batches

    ours_padded = sum(max(encoded[i].length for i in b) * len(b) for b in plan_batches(encoded, batch_size))
    flops = model_flops(
        embedder.backbone.config, [e.length for e in encoded], [g for e in encoded for g in e.grids]
    )
    return {
        "t_naive": t_naive,
        "t_ours": t_ours,
        "t_packed": t_packed,
        "cpu_naive": c_naive,
        "cpu_ours": c_ours,
        "cpu_packed": c_packed,
        "max_abs_diff": float(np.abs(naive_vecs - ours_vecs).max()),
        "packed_max_abs_diff": float(np.abs(packed_vecs - ours_vecs).max()),
        "real_tokens": sum(e.length for e in encoded),
        "naive_padded": naive_padded,
        "ours_padded": ours_padded,
        "patches": sum(e.num_patches for e in encoded),
        "flops": flops,
    }


def _best(fn: Callable[[], Any], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _our_batches(embedder: Any, records: list[Any], batch_size: int) -> list[dict[str, Any]]:
    """The batches `encode` runs (deferred pixels, raw patches where the model takes them), collated."""
    from umarvel_cli.models.batching import plan_batches
    from umarvel_cli.models.patch_embed import accepts_raw_patches

    encoded = embedder.formatter.encode_many(records, "candidate", defer_decode=True)
    collate = embedder.raw_collator if accepts_raw_patches(embedder.backbone) else embedder.collator
    return [collate([encoded[i] for i in b]) for b in plan_batches(encoded, batch_size)]


def _run_model(embedder: Any, batches: list[dict[str, Any]], workers: int = 1) -> list[Any]:
    """The model on already-collated batches, `workers` threads of one torch thread each at once;
    each batch's output, in batch order (returned, not copied, so the timing is the model's alone)."""
    import torch

    def one(batch: dict[str, Any]) -> Any:
        with torch.inference_mode():
            return embedder.forward(batch)

    if workers == 1:
        return [one(b) for b in batches]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, batches))


def shared_floor(embedder: Any, records: list[Any], batch_size: int, reps: int) -> dict[str, float]:
    """Seconds of the work any exact path must do, ours at its leanest: decode every image, resize
    it (the naive loop's pixels are matched exactly, so the same Pillow calls), and the model on our
    already-collated batches. Our total minus this is our own overhead; naive / this is the ceiling
    of the ratio at the same thread count."""
    from umarvel_cli.models.inputs.images import load_image

    patcher = embedder.formatter.patcher
    paths = [r.image for r in records if r.image is not None]
    decode = _best(lambda: [load_image(p) for p in paths], reps)
    images = [load_image(p) for p in paths]
    resize = _best(lambda: [patcher.resize(im) for im in images], reps)
    batches = _our_batches(embedder, records, batch_size)
    return {"decode": decode, "resize": resize, "model": _best(lambda: _run_model(embedder, batches), reps)}


def core_scaling(embedder: Any, records: list[Any], batch_size: int, workers: int, reps: int) -> float:
    """How much faster the model runs our batches on `workers` threads (one torch thread each) than on
    one: what this box's cores give compute that needs no locks (2.0 would be perfect)."""
    import torch

    batches = _our_batches(embedder, records, batch_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # worker threads take their intra-op count from this when they start
    try:
        one = _best(lambda: _run_model(embedder, batches), reps)
        many = _best(lambda: _run_model(embedder, batches, workers), reps)
    finally:
        torch.set_num_threads(threads)
    return one / many


PATHS = (("naive", "naive loop"), ("ours", "umarvel embed path"), ("packed", "umarvel embed path, packed"))
TABLE = TableSpec(
    label="method",
    metric="items/s",
    baseline="naive loop",
    headline="umarvel embed path",
    group=("device",),
    columns=("seconds", "CPU s", "LLM tokens (padded)", "GFLOP/s"),
)


def _rows(n: int, r: dict, device: str) -> list[dict[str, Any]]:
    """One row per path; model FLOP rate always, MFU where the card's peak is known."""
    padded = {"naive": r["naive_padded"], "ours": r["ours_padded"], "packed": r["real_tokens"]}
    rows = []
    for key, method in PATHS:
        seconds = r[f"t_{key}"]
        mfu, _ = flop_rate_text(r["flops"], seconds, device)
        rows.append(
            {
                "device": device,
                "method": method,
                "items": n,
                "seconds": seconds,
                "items/s": n / seconds,
                "CPU s": r[f"cpu_{key}"],
                "LLM tokens (padded)": padded[key],
                "GFLOP/s": r["flops"] / seconds / 1e9,
                "MFU": mfu,
            }
        )
    return rows


def _with_threads(threads: int, fn: Callable[[], Any]) -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def run_cpu(size: str) -> BenchResult:
    """Both paths with the default torch threads (one per core), and both with one thread.

    The default-threads run is the goal's number (the naive loop parallelises inside each op, ours
    runs one batch per core); the one-thread run shows what is left without any parallelism.
    """
    import torch

    from umarvel_cli.models.embedder import Embedder
    from umarvel_cli.models.registry import get_family
    from umarvel_cli.models.tiny import init_tiny_model
    from umarvel_cli.models.umarvel_config import UmarvelConfig

    n = SIZES[size]
    reps = 2 if size == "quick" else 5
    load = os.getloadavg()[0]  # other jobs on the box distort multi-threaded timings most
    threads = torch.get_num_threads()  # the default, for both paths
    settings = [threads, 1] if threads > 1 else [1]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = init_tiny_model("tiny-qwen2-vl", Path(tmp) / "model")
        cfg = UmarvelConfig.load(folder)
        cfg.max_pixels, cfg.text_token_budget = get_family(cfg.family).max_pixels, 480  # real defaults
        cfg.pool_tokens = "all"  # the released default, what the naive loop's mean pooling computes
        cfg.save(folder)
        embedder = Embedder.from_pretrained(folder, device="cpu")
        records = bench_records(n, Path(tmp) / "images")
        for t in settings:
            results[t] = _with_threads(
                t, lambda: _compare(embedder, records, BATCH_SIZE, reps=reps, sync=lambda: None)
            )
        floor = _with_threads(1, lambda: shared_floor(embedder, records, BATCH_SIZE, reps))
        scaling = core_scaling(embedder, records, BATCH_SIZE, threads, reps) if threads > 1 else 1.0
    rows, parts, extra = [], [], {}
    for t, r in results.items():
        ratio, cpu_ratio = r["t_naive"] / r["t_ours"], r["cpu_naive"] / r["cpu_ours"]
        rows += _rows(n, r, f"cpu, {t} torch thread{'s' if t > 1 else ''}")
        parts.append(
            f"{t} torch thread{'s' if t > 1 else ''} (both paths): ours {n / r['t_ours']:,.1f} vs naive "
            f"{n / r['t_naive']:,.1f} items/s = {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU time; packed "
            f"{n / r['t_packed']:,.1f} items/s; model {flop_rate_text(r['flops'], r['t_ours'], 'cpu')[1]} "
            f"(packed {flop_rate_text(r['flops'], r['t_packed'], 'cpu')[1]})"
        )
        extra[t] = {**r, "ratio": ratio, "cpu_ratio": cpu_ratio, "threads": t}
    r = results[threads]
    summary = (
        f"CPU tiny Qwen2-VL, {n} mixed items, best of {reps}, load average {load:.1f} on "
        f"{os.cpu_count()} cores at the start: "
        + "; ".join(parts)
        + f" (max |diff| {max(x['max_abs_diff'] for x in results.values()):.1e}; "
        f"LLM tokens real {r['real_tokens']:,}, padded naive {r['naive_padded']:,} / ours {r['ours_padded']:,}; "
        f"packed vs ours max |diff| {max(x['packed_max_abs_diff'] for x in results.values()):.1e})"
    )
    one = results[1]
    floor_s = sum(floor.values())
    summary += (
        f" | 1 thread, work any exact path does (decode {floor['decode']:.3f} s, resize "
        f"{floor['resize']:.3f} s, model on our batches {floor['model']:.3f} s) = {floor_s:.3f} s of "
        f"ours {one['t_ours']:.3f} s: ceiling {one['t_naive'] / floor_s:.2f}x at 1 thread"
    )
    if threads > 1:
        summary += (
            f", {r['t_naive'] / (floor_s / threads):.2f}x at {threads} threads with perfect scaling, "
            f"{r['t_naive'] / (floor_s / scaling):.2f}x with this box's (the model on our batches runs "
            f"{scaling:.2f}x faster on {threads} threads than on 1)"
        )
    main = extra.pop(threads)
    contended = None
    if threads > 1:
        # a multi-threaded op whose threads wait on a descheduled peer burns CPU: far more CPU time
        # than one thread for the same naive work means other jobs took the cores during the run
        contended = results[threads]["cpu_naive"] / results[1]["cpu_naive"]
        if contended > CONTENTION_LIMIT:
            summary += (
                f" | WARNING: the naive loop used {contended:.1f}x its one-thread CPU time with "
                f"{threads} threads: other jobs held the cores, the {threads}-thread ratio is not valid"
            )
    return BenchResult(
        "embed",
        summary,
        rows,
        {
            **main,
            "single_thread": extra.get(1),
            "load_average": load,
            "naive_cpu_inflation": contended,
            "shared_floor_1_thread": floor,
            "core_scaling": scaling,
        },
    )


def real_size_compare(device: Any, mcfg: Any, n: int, sync: Callable[[], None], reps: int = 2) -> BenchResult:
    """Naive vs ours vs packed on a random-initialised model of config `mcfg` in bf16 on `device`."""
    import torch

    from umarvel_cli.bench.real_size import build_real_size_backbone, real_size_parts
    from umarvel_cli.models.embedder import Embedder
    from umarvel_cli.models.inputs.image_processor import build_image_processor
    from umarvel_cli.models.registry import attention_implementation, get_family

    dev = torch.device(device)
    tok, cfg, mcfg = real_size_parts(mcfg)
    backbone = build_real_size_backbone(mcfg, dev)
    attn = attention_implementation(dev)
    backbone.set_attn_implementation(attn)
    fam = get_family("qwen2-vl")
    embedder = Embedder(backbone, tok, build_image_processor(fam, cfg.min_pixels, cfg.max_pixels), cfg).to(
        dev
    )
    embedder.eval()
    with tempfile.TemporaryDirectory() as tmp:
        records = bench_records(n, Path(tmp) / "images")
        r = _compare(embedder, records, BATCH_SIZE, reps=reps, sync=sync)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    rates = {key: flop_rate_text(r["flops"], r[f"t_{key}"], name) for key, _ in PATHS}
    ratio = r["t_naive"] / r["t_ours"]
    summary = (
        f"{name}, Qwen2-VL-2B-sized random model (bf16, {attn}), {n} mixed items: ours "
        f"{n / r['t_ours']:,.1f} items/s ({rates['ours'][1]}), packed {n / r['t_packed']:,.1f} items/s "
        f"({rates['packed'][1]}, max |diff| {r['packed_max_abs_diff']:.1e}) vs naive "
        f"{n / r['t_naive']:,.1f} items/s ({rates['naive'][1]}) = {ratio:.2f}x, packed "
        f"{r['t_naive'] / r['t_packed']:.2f}x"
    )
    extra = {**r, "ratio": ratio, "packed_ratio": r["t_naive"] / r["t_packed"]}
    extra["mfu"] = {key: rate[0] for key, rate in rates.items()}
    return BenchResult("embed-gpu", summary, _rows(n, r, name), extra)


def run_gpu(size: str) -> BenchResult:
    """Real-sized random Qwen2-VL-2B in bf16 on CUDA: naive vs ours vs packed, items/s and MFU."""
    import torch

    if not torch.cuda.is_available():
        return BenchResult("embed-gpu", "skipped: no CUDA device", [], {})
    from umarvel_cli.bench.real_size import qwen2_vl_2b_config

    return real_size_compare("cuda", qwen2_vl_2b_config(), GPU_SIZES[size], torch.cuda.synchronize)


def run(size: str = "default") -> BenchResult:
    """CPU comparison; with CUDA available the GPU comparison is added to the rows and summary."""
    result = run_cpu(size)
    import torch

    if torch.cuda.is_available():
        gpu = run_gpu(size)
        result.rows += gpu.rows
        result.summary += " | " + gpu.summary
        result.extra["gpu"] = gpu.extra
    return result
