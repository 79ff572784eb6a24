"""Training stages and the progressive transition (nli → caption → mbeir).

A stage output folder holds:
  model/          the merged model (LoRA folded in, temperature kept in umarvel.json): the next
                  stage's init and what embed/mine read;
  adapter/        the LoRA adapter (+ umarvel.json) when the stage trained LoRA;
  config.yaml     the resolved config;  train_log.jsonl  one row per optimizer step;
  checkpoints/    while running (removed when the stage finishes);
  manifest.json   written last: params = the config, inputs = fingerprints of the init model and data.
Run again: up to date → nothing; killed → resumes from the last checkpoint; changed → redone.
"""

from __future__ import annotations

import json
import shutil
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.checks import check_model_folder
from umarvel_cli.training import distributed as D
from umarvel_cli.training.config import STAGES, TrainConfig, resolve_config
from umarvel_cli.training.data import TrainingSet, load_training_set

MODEL_DIR = "model"
ADAPTER_DIR = "adapter"


@dataclass
class StageRequest:
    """What `umarvel train --stage S` was asked to do (CLI flags, as paths and strings)."""

    stage: str
    model: Path
    out: Path
    data: Path | None = None  # M-BEIR tables (mbeir stage)
    pairs: Path | None = None  # pairs table (nli, caption stages)
    profile: str = "paper"
    config_file: Path | None = None
    sets: list[str] = field(default_factory=list)
    force: bool = False
    device: str | None = None


@dataclass
class StageResult:
    stage: str
    out: Path
    status: str  # fresh | resume | redo | up_to_date
    model: Path
    extra: dict[str, Any] = field(default_factory=dict)


# -- inputs ---------------------------------------------------------------------------------------
def resolve_model_dir(path: Path) -> Path:
    """A model folder, or a finished train stage output (→ its `model/`); one-line error otherwise."""
    path = Path(path)
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None and manifest.stage.startswith("train-") and (path / MODEL_DIR).is_dir():
        return path / MODEL_DIR
    if not (path / "config.json").is_file():
        raise UmarvelError(
            "init model not found",
            file=path,
            expected="a model folder with config.json, or a finished `umarvel train` output",
        )
    return path


def model_fingerprint(model_dir: Path) -> str:
    """A train output's model is named by its stage manifest (content hash), anything else by its files."""
    parent = model_dir.parent
    manifest = read_manifest(parent) if (parent / "manifest.json").is_file() else None
    if model_dir.name == MODEL_DIR and manifest is not None and manifest.stage.startswith("train-"):
        return fingerprint(parent)
    return fingerprint(model_dir)


def data_source(req: StageRequest) -> Path:
    src = req.pairs if req.stage in ("nli", "caption") else req.data
    flag = "--pairs" if req.stage in ("nli", "caption") else "--data"
    if src is None:
        raise UmarvelError(f"stage {req.stage} needs {flag}", field=flag, expected="a prepared table folder")
    if not Path(src).is_dir():
        raise UmarvelError("table folder not found", file=src, field=flag)
    require_complete(src, None, flag)
    return Path(src)


# -- dry run --------------------------------------------------------------------------------------
def _safetensors_params(model_dir: Path) -> int:
    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total


def memory_estimate(model_dir: Path, cfg: TrainConfig, world: int, gpu: bool) -> dict[str, float]:
    """Rough GiB per device: weights, trainable state (grads + AdamW), activations of one forward.

    Activations use Korthikanti et al.'s per-layer s·b·h·34 bytes (half precision, no checkpointing)
    or 2·s·b·h per layer plus one layer with checkpointing; sequences assume ~128 text tokens plus a
    full image at max_pixels. An estimate to size batches, not a promise.
    """
    config = json.loads((model_dir / "config.json").read_text())
    text = config.get("text_config", config)
    h = int(text["hidden_size"])
    layers = int(text["num_hidden_layers"])
    inter = int(text.get("intermediate_size", 4 * h))
    heads = int(text["num_attention_heads"])
    kv = int(text.get("num_key_value_heads", heads)) * int(text.get("head_dim") or h // heads)
    params = _safetensors_params(model_dir)
    max_pixels = 300 * 28 * 28
    umarvel_json = model_dir / "umarvel.json"
    if umarvel_json.is_file():
        max_pixels = int(json.loads(umarvel_json.read_text()).get("max_pixels", max_pixels))
    weight_bytes = 2 if gpu and cfg.lora else 4
    trainable = cfg.lora_rank * (9 * h + 2 * kv + 3 * inter) * layers if cfg.lora else params
    per_device = cfg.batch_size // world // cfg.grad_accum
    per_forward = min(cfg.chunk_size, per_device) if cfg.chunk_size else per_device
    seqs = per_forward * (2 + cfg.hard_negatives) if not cfg.chunk_size else per_forward
    tokens = 128 + max_pixels // (28 * 28)
    act_bytes = 2 if gpu and cfg.bf16 else 4
    per_layer = tokens * seqs * h * act_bytes
    activations = per_layer * (2 * layers + 17) if cfg.gradient_checkpointing else per_layer * 17 * layers
    gib = 1024**3
    est = {
        "weights_gib": params * weight_bytes / gib,
        "trainable_params": float(trainable),
        "grads_and_adamw_gib": trainable * 12 / gib,
        "activations_gib": activations / gib,
    }
    est["total_gib"] = est["weights_gib"] + est["grads_and_adamw_gib"] + est["activations_gib"]
    return est


def describe_stage(req: StageRequest, world: int | None = None) -> dict[str, Any]:
    """What `--dry-run` prints: resolved config, data sizes, steps, memory per device."""
    from umarvel_cli.data.samplers import ContrastiveBatchSampler
    from umarvel_cli.training.trainer import check_batch, count_steps

    cfg, model_dir, data = _prepare(req)
    world = world or D.world_size()
    check_batch(len(data), cfg, world)
    sampler = ContrastiveBatchSampler(data.groups, cfg.batch_size, cfg.seed, cfg.batching, world, 0)
    return {
        "stage": req.stage,
        "init_model": str(model_dir),
        "out": str(req.out),
        "config": cfg.to_dict(),
        "data": {"source": str(data_source(req)), **data.describe()},
        "world_size": world,
        "per_device_batch": cfg.batch_size // world,
        "micro_batch": cfg.batch_size // world // cfg.grad_accum,
        "steps_per_epoch": sampler.batches_per_epoch(),
        "total_steps": count_steps(sampler, cfg),
        "memory_per_device": memory_estimate(model_dir, cfg, world, gpu=_device(req).type == "cuda"),
    }


# -- running ---------------------------------------------------------------------------------------
def _device(req: StageRequest):
    import torch

    if req.device:
        try:
            dev = torch.device(req.device)
        except (RuntimeError, ValueError):
            raise UmarvelError(
                f"unknown device {req.device!r}", field="--device", expected="cpu, cuda or cuda:N"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UmarvelError(
                "torch sees no CUDA device (a CPU-only build or no GPU)",
                field="--device",
                expected="--device cpu",
            )
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise UmarvelError(f"no {dev} (torch sees {torch.cuda.device_count()} GPU(s))", field="--device")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", D.local_rank())
    return torch.device("cpu")


def _prepare(req: StageRequest) -> tuple[TrainConfig, Path, TrainingSet]:
    """Validate everything before any output is touched (bad input leaves no half-made folder)."""
    if req.stage not in STAGES:
        raise UmarvelError(f"unknown stage {req.stage!r}", field="--stage", expected=" | ".join(STAGES))
    cfg = resolve_config(req.stage, req.profile, req.config_file, req.sets)
    model_dir = resolve_model_dir(req.model)
    data = load_training_set(req.stage, data_source(req), cfg)
    return cfg, model_dir, data


def load_trainable_model(model_dir: Path, cfg: TrainConfig, device):
    """The Embedder of `model_dir` set up for `cfg`: seeded LoRA (or full FT), checkpointing."""
    import torch

    from umarvel_cli.models.checkpointing import enable_activation_checkpointing
    from umarvel_cli.models.embedder import Embedder
    from umarvel_cli.models.lora import apply_lora
    from umarvel_cli.training.checkpoint import seed_everything

    seed_everything(cfg.seed)  # LoRA's random init is part of the run's identity
    dtype = torch.bfloat16 if device.type == "cuda" and cfg.lora and cfg.bf16 else torch.float32
    embedder = Embedder.from_pretrained(model_dir, device=device, dtype=dtype)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(embedder.backbone)
    if cfg.lora:
        with warnings.catch_warnings():  # peft probes a renamed transformers property (FutureWarning)
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            apply_lora(
                embedder, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets, cfg.train_vision
            )
    else:
        for name, p in embedder.backbone.named_parameters():
            p.requires_grad_(cfg.train_vision or "visual" not in name.split("."))
    return embedder


def run_stage(req: StageRequest, on_step=None) -> StageResult:
    """Train one stage into `req.out` (up to date → skipped; interrupted → resumed)."""
    from umarvel_cli.console import info
    from umarvel_cli.models.lora import save_adapter, save_merged
    from umarvel_cli.training.trainer import Trainer, check_batch

    cfg, model_dir, data = _prepare(req)
    check_batch(len(data), cfg, D.world_size())
    device = _device(req)  # checked before the folder is touched
    check_model_folder(model_dir)
    params = {"config": cfg.to_dict(), "world_size": D.world_size()}
    inputs = {"model": model_fingerprint(model_dir), "data": fingerprint(data_source(req))}
    sources = [model_dir, data_source(req)]
    plan = (
        plan_stage(req.out, f"train-{req.stage}", params, inputs, req.force, input_paths=sources)
        if D.is_main()
        else None
    )
    status, reason = D.broadcast_object((plan.status, plan.reason) if plan else None)  # type: ignore[misc]
    out = Path(req.out)
    if status == "up_to_date":
        if D.is_main():
            info(f"train {req.stage}: up to date ({out})")
        return StageResult(req.stage, out, status, out / MODEL_DIR, read_manifest(out).extra)  # type: ignore[union-attr]
    if D.is_main():
        if status != "fresh":  # a fresh run into a new folder says nothing (a refused one: only its error)
            info(f"train {req.stage}: {status} ({reason}); init {model_dir}")
        (out / "config.yaml").write_text(cfg.to_yaml())
    embedder = load_trainable_model(model_dir, cfg, device)
    trainer = Trainer(embedder, data, cfg, out, device, description=f"train {req.stage}", on_step=on_step)
    summary = trainer.fit(resume=status == "resume")
    extra: dict[str, Any] = {
        "init_model": str(model_dir),
        "model": str(out / MODEL_DIR),
        "adapter": str(out / ADAPTER_DIR) if cfg.lora else None,
        "temperature": summary.temperature,
        "final_loss": summary.last_loss,
        "samples_per_s": summary.samples_per_s,
        "resumed_from_step": summary.resumed_from,
    }
    if D.is_main():
        for sub in (MODEL_DIR, ADAPTER_DIR):
            shutil.rmtree(out / sub, ignore_errors=True)
        if cfg.lora:
            save_adapter(embedder, out / ADAPTER_DIR)
        save_merged(embedder, out / MODEL_DIR)
        finish_stage(plan, {"examples": len(data), "steps": summary.steps}, extra)  # type: ignore[arg-type]
    trainer.store.clear()  # after the manifest: a kill before it still finds the final checkpoint
    return StageResult(req.stage, out, status, out / MODEL_DIR, extra)


def train(
    req: StageRequest,
    nli_pairs: Path | None = None,
    caption_pairs: Path | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """`umarvel train`: one stage or the progressive chain, or (dry run) their description only.

    Under torchrun the process group is joined here, so the same command line scales out unchanged.
    """
    if req.stage not in (*STAGES, "progressive"):
        raise UmarvelError(
            f"unknown stage {req.stage!r}", field="--stage", expected="progressive | " + " | ".join(STAGES)
        )
    from umarvel_cli.training.progressive import describe_progressive, run_progressive

    D.init_from_env()
    progressive = req.stage == "progressive"
    if dry_run:
        stages = describe_progressive(req, nli_pairs, caption_pairs) if progressive else [describe_stage(req)]
        return {"dry_run": True, "stages": stages}
    results = run_progressive(req, nli_pairs, caption_pairs) if progressive else [run_stage(req)]
    if not D.is_main():  # under torchrun one process reports
        results = []
    return {
        "dry_run": False,
        "stages": [
            {"stage": r.stage, "status": r.status, "out": str(r.out), "model": str(r.model), **r.extra}
            for r in results
        ],
    }
