"""`umarvel train --dry-run`: what would run, stage by stage, with every problem flagged instead of
stopping at the first one. Later stages of the progressive chain name the model the previous stage
will write (their real init), sized from the first stage's architecture."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from umarvel_cli import distributed as D
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.folder import MODEL_DIR, resolve_model_dir
from umarvel_cli.training.config import PROGRESSIVE_CHAIN, STAGE_OBJECTIVES, resolve_config
from umarvel_cli.training.memory import memory_estimate
from umarvel_cli.training.progressive import stage_request
from umarvel_cli.training.stages import (
    RERANK_STAGE,
    StageRequest,
    data_source,
    negatives_source,
    teacher_source,
)


def _stage_requests(req: StageRequest) -> list[StageRequest]:
    """The stages the request runs; a chain's later stages keep the first init (same architecture)."""
    if req.stage != "progressive":
        return [req]
    dry = replace(req, force=False)
    return [stage_request(dry, stage, Path(req.model)) for stage in PROGRESSIVE_CHAIN]


def describe_request(req: StageRequest, world: int | None = None) -> list[dict[str, Any]]:
    """One description per stage: resolved config, init model, data sizes, steps, memory, problems."""
    world = world or D.world_size()
    out: list[dict[str, Any]] = []
    arch_dir: Path | None = None  # the first stage's init model: every stage has its architecture
    previous: StageRequest | None = None
    for sreq in _stage_requests(req):
        problems: list[str] = []
        desc: dict[str, Any] = {
            "stage": sreq.stage,
            "objective": STAGE_OBJECTIVES.get(sreq.stage),
            "out": str(sreq.out),
        }
        if previous is None:
            try:
                arch_dir = resolve_model_dir(sreq.model)
                desc["init_model"] = str(arch_dir)
            except UmarvelError as e:
                desc["init_model"] = str(sreq.model)
                problems.append(str(e))
        else:
            init = Path(previous.out) / MODEL_DIR
            desc["init_model"] = str(init)
            if not (init / "config.json").is_file():
                desc["init_model_note"] = f"written by the {previous.stage} stage before this one starts"
        cfg = _try(problems, resolve_config, sreq.stage, sreq.profile, sreq.config_file, sreq.sets)
        if cfg is not None:
            desc["config"] = cfg.to_dict()
        data = None
        if cfg is not None:
            data = _try(problems, _load, sreq, cfg)
            if data is not None:
                desc["data"] = {"source": str(data_source(sreq)), **data.describe()}
                if sreq.negatives is not None:
                    desc["data"]["negatives"] = str(sreq.negatives)
        if cfg is not None and data is not None:
            desc.update(_steps(problems, data, cfg, world))
        if cfg is not None and arch_dir is not None:
            gpu = (sreq.device or ("cuda" if _cuda() else "cpu")).startswith("cuda")
            desc["memory_per_device"] = _try(problems, memory_estimate, arch_dir, cfg, world, gpu, sreq.stage)
        desc["problems"] = problems
        out.append(desc)
        previous = sreq
    return out


def _load(sreq: StageRequest, cfg):
    from umarvel_cli.training.data import load_training_set

    negatives = negatives_source(sreq)
    model = resolve_model_dir(sreq.model) if negatives is not None else None
    if sreq.stage == RERANK_STAGE:  # an embedding model as the reranker's base is a problem too
        from umarvel_cli.models.reranker import check_reranker_folder

        check_reranker_folder(resolve_model_dir(sreq.model))
    return load_training_set(
        sreq.stage, data_source(sreq), cfg, negatives, model, teacher=teacher_source(sreq), split=sreq.split
    )


def _steps(problems: list[str], data, cfg, world: int) -> dict[str, Any]:
    from umarvel_cli.training.samplers import ContrastiveBatchSampler
    from umarvel_cli.training.trainer import check_batch, count_steps

    try:
        check_batch(len(data), cfg, world)
    except UmarvelError as e:
        problems.append(str(e))
        return {"world_size": world}
    sampler = ContrastiveBatchSampler(data.groups, cfg.batch_size, cfg.seed, cfg.batching, world, 0)
    per_epoch = sampler.batches_per_epoch()
    total = count_steps(sampler, cfg)
    return {
        "world_size": world,
        "per_device_batch": cfg.batch_size // world,
        "micro_batch": cfg.batch_size // world // cfg.grad_accum,
        "steps_per_epoch": per_epoch,
        "total_steps": total,
        "steps_from": "max_steps (overrides epochs)" if cfg.max_steps else f"{cfg.epochs} epochs",
    }


def _try(problems: list[str], fn, *args):
    """fn(*args), or None with its one-line error added to `problems`."""
    try:
        return fn(*args)
    except UmarvelError as e:
        problems.append(str(e))
        return None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
