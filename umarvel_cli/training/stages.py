"""One training stage (nli, caption, mbeir, hardneg, distill, rerank): validate, describe (dry run), train into its folder.

A stage output folder holds:
  model/          the merged model (LoRA folded in, temperature kept in umarvel.json): the next
                  stage's init and what embed/mine read;
  adapter/        the LoRA adapter (+ umarvel.json) when the stage trained LoRA;
  config.yaml     the resolved config;  train_log.jsonl  one row per optimizer step;
  checkpoints/    while running (removed when the stage finishes);
  manifest.json   written last: params = the config, inputs = fingerprints of the init model and data
                  (for hardneg, of the mined folder; extra names it and the model it was mined with;
                  for distill, of the teacher folder; extra names it; for rerank, of the mined
                  folder, the model a generative reranker and `base_model` its init).
Run again: up to date → nothing; killed → resumes from the last checkpoint; changed → redone.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umarvel_cli import distributed as D
from umarvel_cli.artifacts.inputs import require_complete
from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.checks import check_model_folder
from umarvel_cli.models.folder import MODEL_DIR, model_fingerprint, resolve_model_dir
from umarvel_cli.models.umarvel_config import UmarvelConfig
from umarvel_cli.training.config import STAGE_OBJECTIVES, STAGES, TrainConfig, resolve_config
from umarvel_cli.training.data import TrainingSet, load_training_set
from umarvel_cli.training.hardneg_data import MINE_STAGE

ADAPTER_DIR = "adapter"
NEGATIVE_STAGES = ("hardneg", "rerank")  # the stages that read a mined folder (--negatives)
RERANK_STAGE = "rerank"  # trains a generative reranker, not an embedder


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
    nli_pairs: Path | None = None  # progressive: the nli stage's pairs table (default: pairs)
    caption_pairs: Path | None = None  # progressive: the caption stage's pairs table (default: pairs)
    negatives: Path | None = None  # hardneg: the folder `umarvel mine` wrote
    teacher: Path | None = None  # distill: the folder `umarvel rerank score` wrote
    split: str = "train"  # rerank: the split whose queries (and mined rows) train the reranker


@dataclass
class StageResult:
    stage: str
    out: Path
    status: str  # fresh | resume | redo | up_to_date
    model: Path
    extra: dict[str, Any] = field(default_factory=dict)


# -- inputs ---------------------------------------------------------------------------------------
def data_source(req: StageRequest) -> Path:
    src = req.pairs if req.stage in ("nli", "caption") else req.data
    flag = "--pairs" if req.stage in ("nli", "caption") else "--data"
    if src is None:
        raise UmarvelError(f"stage {req.stage} needs {flag}", field=flag, expected="a prepared table folder")
    if not Path(src).is_dir():
        raise UmarvelError("table folder not found", file=src, field=flag)
    require_complete(src, None, flag)
    return Path(src)


def negatives_source(req: StageRequest) -> Path | None:
    """The finished mined folder of a hardneg or rerank request (None for the other stages, which refuse one)."""
    if req.stage not in NEGATIVE_STAGES:
        if req.negatives is not None:
            raise UmarvelError(
                f"stage {req.stage} takes no --negatives", field="--negatives", expected="--stage hardneg"
            )
        return None
    if req.negatives is None:
        raise UmarvelError(
            f"stage {req.stage} needs --negatives",
            field="--negatives",
            expected="the --out folder of `umarvel mine`",
        )
    require_complete(req.negatives, [MINE_STAGE], "--negatives")
    return Path(req.negatives)


def teacher_source(req: StageRequest) -> Path | None:
    """The finished teacher folder of a distill request (None for the other stages, which refuse one)."""
    if req.stage != "distill":
        if req.teacher is not None:
            raise UmarvelError(f"stage {req.stage} takes no --teacher", field="--teacher", expected="distill")
        return None
    if req.teacher is None:
        raise UmarvelError(
            "stage distill needs --teacher", field="--teacher", expected="the --out of `umarvel rerank score`"
        )
    from umarvel_cli.training.distill_data import check_teacher

    return check_teacher(req.teacher, data_source(req))


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
    if req.stage == RERANK_STAGE:  # an embedding model (or a bad tokenizer) is refused before any reading
        from umarvel_cli.models.reranker import check_reranker_folder

        check_reranker_folder(model_dir)
        if cfg.max_image_pixels is not None:
            raise UmarvelError("the rerank stage trains at the model's own resolution",
                               field="max_image_pixels", expected="null")  # fmt: skip
    data = load_training_set(
        req.stage,
        data_source(req),
        cfg,
        negatives_source(req),
        model_dir,
        teacher=teacher_source(req),
        split=req.split,
    )
    return cfg, model_dir, data


def load_trainable_model(model_dir: Path, cfg: TrainConfig, device, reranker: bool = False):
    """The Embedder (or, `reranker`, the Reranker with the config's prompt) of `model_dir` set up for
    `cfg`: seeded LoRA (or full FT), checkpointing. Both hold their network as `backbone`."""
    import torch

    from umarvel_cli.models.checkpointing import enable_activation_checkpointing
    from umarvel_cli.models.embedder import Embedder
    from umarvel_cli.models.lora import apply_lora
    from umarvel_cli.models.reranker import Reranker
    from umarvel_cli.training.checkpoint import seed_everything

    seed_everything(cfg.seed)  # LoRA's random init is part of the run's identity
    dtype = torch.bfloat16 if device.type == "cuda" and cfg.lora and cfg.bf16 else torch.float32
    if reranker:
        model = Reranker.from_pretrained(model_dir, device=device, dtype=dtype, prompt=cfg.rerank_prompt)
    else:
        model = Embedder.from_pretrained(model_dir, device=device, dtype=dtype)
        if cfg.max_image_pixels is not None and cfg.max_image_pixels < model.config.max_pixels:  # type: ignore[operator]
            model.set_max_pixels(cfg.max_image_pixels)  # training only: run_stage saves the model's own
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model.backbone)
    if cfg.lora:
        with warnings.catch_warnings():  # peft probes a renamed transformers property (FutureWarning)
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            apply_lora(
                model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets, cfg.train_vision
            )
    else:
        for name, p in model.backbone.named_parameters():
            p.requires_grad_(cfg.train_vision or "visual" not in name.split("."))
    return model


def run_stage(req: StageRequest, on_step=None) -> StageResult:
    """Train one stage into `req.out` (up to date → skipped; interrupted → resumed)."""
    from umarvel_cli.console import info, warn
    from umarvel_cli.models.lora import save_adapter, save_merged
    from umarvel_cli.training.objectives import build_objective
    from umarvel_cli.training.trainer import Trainer, check_batch

    cfg, model_dir, data = _prepare(req)
    check_batch(len(data), cfg, D.world_size())
    device = _device(req)  # checked before the folder is touched
    check_model_folder(model_dir)
    params = {"config": cfg.to_dict(), "world_size": D.world_size()}
    inputs = {"model": model_fingerprint(model_dir), "data": fingerprint(data_source(req))}
    sources = [model_dir, data_source(req)]
    negatives = negatives_source(req)
    if negatives is not None:  # the mined table is an input like the data: a new mining redoes the stage
        inputs["negatives"] = fingerprint(negatives)
        sources.append(negatives)
    teacher = teacher_source(req)
    if teacher is not None:  # the teacher table is an input like the data: new scores redo the stage
        inputs["teacher"] = fingerprint(teacher)
        sources.append(teacher)
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
    quality = getattr(data, "quality", None)  # distill: how well the teacher orders its lists
    if D.is_main() and quality is not None and quality.worse_than_retrieval:
        warn(
            f"train {req.stage}: the teacher orders its lists worse than the retriever alone "
            f"({quality.describe()}): the student is taught a worse order than its own"
        )
    rerank = req.stage == RERANK_STAGE
    model = load_trainable_model(model_dir, cfg, device, reranker=rerank)
    if hasattr(on_step, "for_stage"):  # a per-stage sink (e.g. TensorBoard)
        on_step = on_step.for_stage(req.stage) if D.is_main() else None
    objective = build_objective(STAGE_OBJECTIVES[req.stage], cfg)
    trainer = Trainer(
        model, data, cfg, objective, out, device, description=f"train {req.stage}", on_step=on_step
    )
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
    if rerank:
        extra["base_model"] = str(model_dir)
        extra["rerank_prompt"] = cfg.rerank_prompt
    if negatives is not None:
        mined = read_manifest(negatives)
        extra["negatives"] = str(negatives.resolve())
        extra["negatives_model"] = mined.extra.get("model") if mined is not None else None
    if teacher is not None:
        extra["teacher"] = str(teacher.resolve())
    if quality is not None:
        extra["teacher_quality"] = quality.as_dict()
    init = UmarvelConfig.load(model_dir) if UmarvelConfig.exists(model_dir) else None
    max_pixels = (init or UmarvelConfig(family=model.config.family)).max_pixels
    if model.config.max_pixels != max_pixels:  # only an embedder trains at another resolution
        extra["train_max_pixels"] = model.config.max_pixels
        model.set_max_pixels(max_pixels)  # the saved model embeds at its init's resolution
    if D.is_main():
        for sub in (MODEL_DIR, ADAPTER_DIR):
            shutil.rmtree(out / sub, ignore_errors=True)
        if cfg.lora:
            save_adapter(model, out / ADAPTER_DIR)
        save_merged(model, out / MODEL_DIR)
        finish_stage(plan, {"examples": len(data), "steps": summary.steps}, extra)  # type: ignore[arg-type]
    trainer.store.clear()  # after the manifest: a kill before it still finds the final checkpoint
    return StageResult(req.stage, out, status, out / MODEL_DIR, extra)
