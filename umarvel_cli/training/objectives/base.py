"""What the trainer asks of a training objective, and the rank view it hands the objective's loss.

An objective turns a micro-batch of examples into (1) the sides the model encodes, each a list of
records with a role, plus the targets its loss reads (ids, labels, teacher scores), and (2) from the
model's outputs, a loss and the values worth logging. An objective whose model is not an embedder
(the reranker: a loss on an answer token, not on embeddings) sets `runs_model` and computes its loss
from the model and the batch itself (`model_loss`); the trainer's loop is the same. It declares which outputs and targets its loss
needs from every rank; the trainer gathers those (outputs with gradient, targets without), so an
objective never calls the distributed helpers itself and runs unchanged under torchrun.

Loss convention (see `umarvel_cli.distributed` for why it makes gradients exact over ranks): the
loss is this rank's share of the global mean, the sum over its local rows divided by the rows of
all ranks (`RankView.total`); logged values follow the same convention, so the trainer sums both
over micro-batches and ranks. The rows are those of the first side.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from umarvel_cli import distributed as D
from umarvel_cli.data.records import Record, Role
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import TrainExample


@dataclass
class Side:
    """Records the model encodes for one part of the batch (queries, positives, ...), in one role."""

    name: str
    records: list[Record]
    role: Role


@dataclass
class ObjectiveBatch:
    """One micro-batch as an objective needs it: the sides to encode and the loss's other inputs."""

    sides: list[Side]
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    pairs: list[tuple[Record, Record]] = field(default_factory=list)  # for an objective that runs the model


@dataclass
class RankView:
    """Outputs (fp32, by side name) and targets as this rank sees them: `local` holds its own rows,
    `world` the declared ones gathered over ranks in rank order (the local tensors in one process)."""

    local: dict[str, torch.Tensor]
    world: dict[str, torch.Tensor]
    offset: int  # where this rank's rows start in the gathered order
    total: int  # rows over all ranks: the global mean's denominator


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # this rank's share of the global mean (module docstring)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars, same convention


class Objective(ABC):
    """A training loss the trainer runs without knowing which one it is."""

    name: ClassVar[str]  # how configs and stages name it (the registry key)
    gathered_sides: tuple[str, ...] = ()  # outputs the loss needs from every rank (with gradient)
    gathered_targets: tuple[str, ...] = ()  # targets the loss needs from every rank
    runs_model: ClassVar[bool] = False  # True: the trainer calls `model_loss` instead of encoding sides

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: TrainConfig) -> Objective: ...

    @abstractmethod
    def batch(self, examples: list[TrainExample], device: torch.device) -> ObjectiveBatch: ...

    def loss(self, view: RankView, temperature: torch.Tensor) -> ObjectiveOutput:
        """The loss over the encoded sides (an objective with `runs_model` has none)."""
        raise NotImplementedError(f"objective {self.name} does not score encoded sides")

    def model_loss(self, model: torch.nn.Module, batch: ObjectiveBatch) -> ObjectiveOutput:
        """The loss of a model that is not an embedder (the reranker's answer token): the objective
        runs the model on its batch itself; same loss convention. Only with `runs_model`."""
        raise NotImplementedError(f"objective {self.name} scores encoded sides, not the model")


def rank_view(objective: Objective, batch: ObjectiveBatch, outputs: Sequence[torch.Tensor]) -> RankView:
    """The objective's view of one micro-batch: outputs in fp32, declared names gathered over ranks."""
    local = {side.name: out.float() for side, out in zip(batch.sides, outputs, strict=True)}
    offset, total = D.shard_offset(outputs[0].shape[0], outputs[0].device)
    local.update(batch.targets)
    world = {name: D.gather_with_grad(local[name]) for name in objective.gathered_sides}
    world.update({name: D.gather_no_grad(local[name]) for name in objective.gathered_targets})
    return RankView(local, world, offset, total)
