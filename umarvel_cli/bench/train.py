"""Training throughput (samples/s) of `umarvel train`'s step on a tiny backbone.

Every configuration runs the real `Trainer` (format → collate → forward → gathered InfoNCE →
backward → AdamW) on the same text pairs, in the same process, and reports the median samples/s
over the steps after a warm-up step. The baseline is the plain step (whole batch per forward,
fp32); against it:
- `gradcache`: the chunked GradCache path (chunks of batch/4): same gradients, bounded activation
  memory, paid for with a second forward;
- on CUDA additionally `bf16` autocast, and the peak GPU memory of each row (the reason GradCache
  exists: the ratio of peak memory, plain vs chunked).
The tiny model is compute-light, so CPU numbers mostly measure the per-step overhead of formatting
and collation; the GPU rows are the meaningful ones.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from umarvel_cli.bench import BenchResult

SIZES = {
    "quick": {"steps": 3, "batch": 16, "repeats": 1},
    "default": {"steps": 10, "batch": 32, "repeats": 2},
}
WORDS = [
    "red",
    "green",
    "blue",
    "yellow",
    "black",
    "white",
    "small",
    "large",
    "round",
    "square",
    "striped",
    "dotted",
]
THINGS = ["car", "house", "bird", "cup", "tree", "boat", "chair", "lamp", "kite", "shoe", "clock", "vase"]


def _pairs(root: Path, n: int) -> Path:
    from umarvel_cli.artifacts import TABLES, ShardWriter

    rows = []
    for i in range(n):
        a, b, t = WORDS[i % 12], WORDS[(i // 12) % 12], THINGS[(i // 144) % 12]
        rows.append(
            {
                "pair_id": str(i),
                "kind": "nli",
                "query_text": f"A photo of a {a} and {b} {t} on a table, number {i}.",
                "query_image": None,
                "pos_text": f"There is a {a} {b} {t}.",
                "pos_image": None,
                "neg_text": f"There is no {a} {t}.",
                "neg_image": None,
            }
        )
    with ShardWriter(root, "pairs", TABLES["pairs"]) as w:
        w.write_rows(rows)
    return root


def _measure(model_dir: Path, pairs: Path, out: Path, device: Any, sets: list[str]) -> dict[str, float]:
    import torch

    from umarvel_cli.training.config import resolve_config
    from umarvel_cli.training.data import PairsSet
    from umarvel_cli.training.stages import load_trainable_model
    from umarvel_cli.training.trainer import Trainer

    cfg = resolve_config("nli", "demo", sets=sets)
    model = load_trainable_model(model_dir, cfg, device)
    rows: list[float] = []
    trainer = Trainer(model, PairsSet(pairs, "nli", cfg.hard_negatives), cfg, out, device,
                      on_step=lambda step, row: rows.append(row["samples_per_s"]))  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {"samples_per_s": statistics.median(rows[1:] or rows), "peak_mib": peak}


def run(size: str = "default") -> BenchResult:
    import torch

    from umarvel_cli.models.tiny import init_tiny_model

    p = SIZES[size]
    batch, steps = p["batch"], p["steps"]
    common = [f"batch_size={batch}", f"max_steps={steps}", f"save_every={steps + 1}", "epochs=1"]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = init_tiny_model("tiny-qwen2-vl", root / "model", seed=0)
        pairs = _pairs(root / "pairs", batch * (steps + 1))
        for device in devices:
            variants = [
                ("plain fp32", ["bf16=false"]),
                ("gradcache fp32", ["bf16=false", f"chunk_size={batch // 4}"]),
            ]
            if device.type == "cuda":
                variants += [
                    ("plain bf16", ["bf16=true"]),
                    ("gradcache bf16", ["bf16=true", f"chunk_size={batch // 4}"]),
                ]
            # alternate the variants `repeats` times and keep each one's best median: a busy
            # machine then slows every variant alike instead of whichever ran last
            best: dict[str, dict[str, float]] = {}
            for rep in range(p["repeats"]):
                for name, sets in variants:
                    out = root / f"out-{device.type}-{name.replace(' ', '-')}-{rep}"
                    got = _measure(model_dir, pairs, out, device, common + sets)
                    if name not in best or got["samples_per_s"] > best[name]["samples_per_s"]:
                        best[name] = got
            base = best["plain fp32"]
            for name, _ in variants:
                got = best[name]
                rows.append(
                    {
                        "device": device.type,
                        "variant": name,
                        "batch": batch,
                        "samples_per_s": got["samples_per_s"],
                        "vs_plain_fp32": got["samples_per_s"] / base["samples_per_s"],
                        "peak_mib": got["peak_mib"],
                    }
                )
    by = {(r["device"], r["variant"]): r for r in rows}
    cpu = by[("cpu", "plain fp32")]
    summary = f"cpu {cpu['samples_per_s']:.1f} samples/s (tiny, batch {batch}); gradcache x{by[('cpu', 'gradcache fp32')]['vs_plain_fp32']:.2f}"
    if ("cuda", "plain fp32") in by:
        g = by[("cuda", "plain bf16")]
        summary += f"; cuda bf16 {g['samples_per_s']:.1f} samples/s (x{g['vs_plain_fp32']:.2f} vs fp32)"
    return BenchResult("train", summary, rows, {"steps": steps, "backbone": "tiny-qwen2-vl"})
