"""The training loop: plain and readable, single-process or under torchrun unchanged.

One optimizer step = one global batch from the sampler, this rank's slice split into `grad_accum`
micro-batches; each micro-batch is turned into sides to encode by the stage's objective, embedded
(whole, or in GradCache chunks), scored by the objective's loss (with what it declared gathered
over ranks) and backpropagated; gradients are summed over ranks, clipped, and AdamW steps with
warmup + cosine. The trainer does not know which loss it runs (`training.objectives`). Checkpoints
every `save_every` steps and at the end hold everything a resumed run needs to continue
bit-for-bit: weights, optimizer, scheduler, sampler step, RNG.

The model is any nn.Module with `prepare(records, role) -> batch`, `forward(batch) -> [n, d]`
(L2-normalised) and a `log_temperature` parameter: the `Embedder`, or a toy encoder in tests. An
objective with `runs_model` (the reranker's) runs the model itself, which then needs neither; a
model without `log_temperature` trains no temperature.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from umarvel_cli import distributed as D
from umarvel_cli.artifacts.jsonlog import read_log, rewrite_log
from umarvel_cli.console import make_progress
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.checkpoint import CheckpointStore, seed_everything, set_rng_state
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import TrainExample, TrainingSet
from umarvel_cli.training.gradcache import cached_backward, split_chunks
from umarvel_cli.training.objectives import Objective, rank_view
from umarvel_cli.training.samplers import ContrastiveBatchSampler
from umarvel_cli.training.schedule import lr_lambda, warmup_steps

LOG_NAME = "train_log.jsonl"


@dataclass
class TrainSummary:
    steps: int
    resumed_from: int
    last_loss: float
    temperature: float | None  # None: the model has no temperature (the reranker)
    samples_per_s: float
    examples: int


def check_batch(n_examples: int, cfg: TrainConfig, world: int = 1) -> None:
    """A one-line error when the global batch does not fit the data or split over ranks x micro-batches."""
    if cfg.batch_size > n_examples:
        raise UmarvelError(
            f"batch size {cfg.batch_size} is larger than the data ({n_examples} training examples)",
            field="batch_size",
            expected=f"<= {n_examples}",
        )
    if cfg.batch_size % (world * cfg.grad_accum):
        raise UmarvelError(
            f"batch size {cfg.batch_size} is not divisible by ranks x grad_accum = {world * cfg.grad_accum}",
            field="batch_size",
        )


def clamped_temperature(log_temperature: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """exp(log τ) within [low, high] (B10: log-parameterised and bounded)."""
    return log_temperature.float().exp().clamp(low, high)


def count_steps(sampler: ContrastiveBatchSampler, cfg: TrainConfig) -> int:
    total = sampler.batches_per_epoch() * cfg.epochs
    return cfg.max_steps if cfg.max_steps else total  # as in transformers: max_steps overrides epochs


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        data: TrainingSet,
        cfg: TrainConfig,
        objective: Objective,
        out: str | Path,
        device: torch.device,
        description: str = "train",
        on_step: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.cfg = cfg
        self.objective = objective
        self.out = Path(out)
        self.device = device
        self.description = description
        self.on_step = on_step
        check_batch(len(data), cfg, D.world_size())
        self.sampler = ContrastiveBatchSampler(
            data.groups, cfg.batch_size, cfg.seed, cfg.batching, D.world_size(), D.rank()
        )
        self.per_epoch = self.sampler.batches_per_epoch()
        self.total_steps = count_steps(self.sampler, cfg)
        self.store = CheckpointStore(self.out / "checkpoints", cfg.keep_checkpoints)
        self.log_path = self.out / LOG_NAME
        self.autocast = cfg.bf16 and device.type == "cuda"
        self.temperature_param: nn.Parameter | None = getattr(model, "log_temperature", None)
        if self.temperature_param is not None:
            with torch.no_grad():  # the stage's starting τ (a resumed run then loads the learned value)
                if cfg.temperature is not None:
                    self.temperature_param.fill_(math.log(cfg.temperature))
            self.temperature_param.requires_grad_(cfg.learn_temperature)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lr_lambda(self.total_steps, warmup_steps(self.total_steps, cfg.warmup_ratio), cfg.schedule),
        )

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        main = [p for p in self.params if p is not self.temperature_param]
        groups: list[dict[str, Any]] = [{"params": main, "weight_decay": cfg.weight_decay}]
        if self.temperature_param is not None and self.temperature_param.requires_grad:
            groups.append(
                {"params": [self.temperature_param], "weight_decay": 0.0, "lr": cfg.temperature_lr or cfg.lr}
            )
        if not any(g["params"] for g in groups):
            raise UmarvelError("nothing to train: no parameter requires a gradient", field="lora")
        return torch.optim.AdamW(
            [g for g in groups if g["params"]],
            lr=cfg.lr,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
        )

    # -- one step ---------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()

    def _encode(self, batch: Any) -> torch.Tensor:
        with self._autocast():
            return self.model(batch)

    def temperature(self) -> torch.Tensor | None:
        """The clamped τ the loss uses (differentiable when τ is learned); None for a model without one."""
        if self.temperature_param is None:
            return None
        return clamped_temperature(self.temperature_param, self.cfg.temperature_min, self.cfg.temperature_max)

    def _micro_step(self, examples: Sequence[TrainExample], scale: float) -> tuple[float, dict[str, float]]:
        """Backpropagate `scale` x the objective's loss of one micro-batch; (loss, logged values)."""
        cfg = self.cfg
        batch = self.objective.batch(list(examples), self.device)
        if self.objective.runs_model:  # its loss is not over embeddings: it runs the model itself
            with self._autocast():
                out = self.objective.model_loss(self.model, batch)
            (out.loss * scale).backward()
            return float(out.loss.detach()), {k: float(v) for k, v in out.logs.items()}
        logs: dict[str, torch.Tensor] = {}

        def loss_fn(outputs: list[torch.Tensor]) -> torch.Tensor:
            result = self.objective.loss(rank_view(self.objective, batch, outputs), self.temperature())
            logs.update(result.logs)
            return result.loss

        if cfg.chunk_size:
            chunked = [
                [self.model.prepare(list(c), side.role) for c in split_chunks(side.records, cfg.chunk_size)]
                if side.records
                else []
                for side in batch.sides
            ]
            loss = float(cached_backward(self._encode, chunked, loss_fn, scale=scale))
        else:
            embs = [
                self._encode(self.model.prepare(side.records, side.role)) if side.records else None
                for side in batch.sides
            ]
            dim = embs[0].shape[1]  # type: ignore[union-attr]
            full = [e if e is not None else torch.zeros(0, dim, device=self.device) for e in embs]
            result = loss_fn(full)
            (result * scale).backward()
            loss = float(result.detach())
        return loss, {k: float(v) for k, v in logs.items()}

    def _step(self, step: int) -> tuple[float, dict[str, float]]:
        """One optimizer step; (loss, logged values), each summed over ranks."""
        epoch = step // self.per_epoch
        local = self.sampler.local_batch(step)
        examples = [self.data.example(int(i), epoch) for i in local]
        self.optimizer.zero_grad(set_to_none=True)
        micro = len(examples) // self.cfg.grad_accum
        loss = 0.0
        logs: dict[str, float] = {}
        for k in range(self.cfg.grad_accum):
            part = examples[k * micro : (k + 1) * micro]
            part_loss, part_logs = self._micro_step(part, 1.0 / self.cfg.grad_accum)
            loss += part_loss / self.cfg.grad_accum
            for key, value in part_logs.items():
                logs[key] = logs.get(key, 0.0) + value / self.cfg.grad_accum
        D.all_reduce_gradients(self.params)
        if self.cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        if self.temperature_param is not None:
            with torch.no_grad():
                self.temperature_param.clamp_(
                    math.log(self.cfg.temperature_min), math.log(self.cfg.temperature_max)
                )
        logged = {key: D.all_reduce_sum(value, self.device) for key, value in logs.items()}
        return D.all_reduce_sum(loss, self.device), logged

    # -- checkpoints ------------------------------------------------------------------------------
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def _save(self, step: int) -> None:
        state = {
            "step": step,
            "sampler": self.sampler.state_dict(step),
            "trainable": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        self.store.save(
            step, state, {"sampler": self.sampler.state_dict(step), "total_steps": self.total_steps}
        )

    def _resume(self) -> int:
        path = self.store.latest()
        if path is None:
            return 0
        state, rng = self.store.load(path)
        try:
            start = self.sampler.check_state(state["sampler"])
        except ValueError as e:
            raise UmarvelError(f"cannot resume: {e}", file=path, expected="the same data and config") from e
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                if name not in params:
                    raise UmarvelError(f"checkpoint holds unknown parameter {name}", file=path)
                params[name].copy_(value.to(params[name].device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(rng)
        return start

    # -- the loop ---------------------------------------------------------------------------------
    def _truncate_log(self, keep_through: int) -> None:
        if not D.is_main() or not self.log_path.is_file():
            return
        kept = [row for row in read_log(self.log_path) if row.get("step", 0) <= keep_through]
        rewrite_log(self.log_path, kept)  # also drops a line torn by a kill

    def fit(self, resume: bool = False) -> TrainSummary:
        """Train to `total_steps`; with `resume`, continue from the latest complete checkpoint."""
        self.out.mkdir(parents=True, exist_ok=True)
        seed_everything(self.cfg.seed + D.rank())
        start = self._resume() if resume else 0
        if not resume:
            self.store.clear()
        self._truncate_log(start)
        self.model.train()
        loss = float("nan")
        rate = 0.0
        batch = self.cfg.batch_size
        began = time.perf_counter()
        with (
            make_progress("steps") as progress,
            self.log_path.open("a") if D.is_main() else contextlib.nullcontext() as log,
        ):
            task = progress.add_task(self.description, total=self.total_steps, completed=start, rate="")
            for step in range(start, self.total_steps):
                t0 = time.perf_counter()
                loss, logged = self._step(step)
                dt = time.perf_counter() - t0
                rate = batch / dt if dt > 0 else 0.0
                row = {
                    "step": step + 1,
                    "epoch": step // self.per_epoch,
                    "loss": loss,
                    **logged,
                    **({} if self.temperature_param is None else {"temperature": self.temperature().item()}),
                    "lr": self.scheduler.get_last_lr()[0],
                    "samples_per_s": rate,
                    "elapsed_s": time.perf_counter() - began,
                }
                if log is not None:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                progress.update(
                    task,
                    advance=1,
                    rate=f"loss {loss:.4f} lr {row['lr']:.2e}"
                    + (f" τ {row['temperature']:.4f}" if "temperature" in row else "")
                    + f" {rate:,.1f} samples/s",
                )
                done = step + 1
                if done % self.cfg.save_every == 0 or done == self.total_steps:
                    self._save(done)
                if self.on_step is not None:
                    self.on_step(done, row)
        self.model.eval()
        if start == self.total_steps and self.log_path.is_file():  # resumed at the very end
            rows = read_log(self.log_path)
            loss = rows[-1]["loss"] if rows else loss
        elapsed = time.perf_counter() - began
        steps_run = self.total_steps - start
        return TrainSummary(
            steps=self.total_steps,
            resumed_from=start,
            last_loss=loss,
            temperature=None if self.temperature_param is None else self.temperature().item(),
            samples_per_s=steps_run * batch / elapsed if elapsed > 0 and steps_run else rate,
            examples=len(self.data),
        )
