"""The distillation stage's objective: KL(teacher ‖ student) over each query's own teacher list (spec 3.3).

Every example brings its query and its top-k candidates with teacher scores F/2 (`DistillSet`).
Student logits are cos(q, c)/τ with the trainer's learnable τ; teacher logits are (F/2)/τ with τ
detached, so τ gets its gradient through the student side only. No in-batch negatives (as released):
nothing is gathered over ranks and each rank scores its own rows. Candidates shared by queries of a
micro-batch are encoded once (the loss takes rows of c through an index, -1 padding short lists).

`distill_infonce_weight` > 0 adds w × the in-batch InfoNCE of the query against its positive, every
gathered positive and every distinct gathered list candidate (once, however many ranks encoded it, so
torchrun equals one process), the query's own positives masked by content key (the lists keep
positives, so they would otherwise be negatives of their own query).
"""

from __future__ import annotations

import torch

from umarvel_cli.errors import UmarvelError
from umarvel_cli.losses.distill_kl import IMPLS, distill_kl_loss
from umarvel_cli.losses.ids import content_ids, positive_id_matrix
from umarvel_cli.losses.infonce import info_nce_loss
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import TrainExample
from umarvel_cli.training.objectives.base import Objective, ObjectiveBatch, ObjectiveOutput, RankView, Side


def first_occurrences(ids: torch.Tensor) -> torch.Tensor:
    """Sorted positions of the first row of each distinct id (the global batch's distinct candidates)."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    rows = torch.arange(len(ids), device=ids.device)
    first = torch.full((len(uniq),), len(ids), dtype=torch.int64, device=ids.device)
    return first.scatter_reduce(0, inverse, rows, reduce="amin").sort().values


class DistillKL(Objective):
    name = "distill"

    def __init__(self, infonce_weight: float = 0.0, mask_false_negatives: bool = True, impl: str = "auto"):
        if infonce_weight < 0:
            raise UmarvelError(f"distill_infonce_weight {infonce_weight}", field="distill_infonce_weight")
        self.infonce_weight = infonce_weight
        self.mask_false_negatives = mask_false_negatives
        self.impl = impl if impl in IMPLS else "auto"  # eager and hybrid exist for InfoNCE only
        self.nce_impl = impl
        if infonce_weight:
            self.gathered_sides = ("positive", "candidates")
            self.gathered_targets = ("pos_ids", "cand_ids")

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> DistillKL:
        return cls(cfg.distill_infonce_weight, cfg.mask_false_negatives, cfg.loss_impl)

    def batch(self, examples: list[TrainExample], device: torch.device) -> ObjectiveBatch:
        """Queries, (positives,) the micro-batch's distinct list candidates; index [B, K] into them
        (-1 = padding) and teacher scores [B, K] (F/2)."""
        rows: dict[str, int] = {}
        cands = []
        for e in examples:
            scores = getattr(e, "teacher_scores", None)
            if scores is None or len(scores) != len(e.negatives) or not e.negatives:
                raise UmarvelError(
                    f"example {e.query.id!r} has no teacher list",
                    field="teacher_scores",
                    expected="examples of the distill stage (DistillSet)",
                )
            for c in e.negatives:
                if c.id not in rows:
                    rows[c.id] = len(cands)
                    cands.append(c)
        k = max(len(e.negatives) for e in examples)
        index = torch.full((len(examples), k), -1, dtype=torch.int64)
        teacher = torch.zeros(len(examples), k, dtype=torch.float32)
        for i, e in enumerate(examples):
            index[i, : len(e.negatives)] = torch.tensor([rows[c.id] for c in e.negatives])
            teacher[i, : len(e.negatives)] = torch.tensor(e.teacher_scores, dtype=torch.float32)  # type: ignore[attr-defined]
        sides = [Side("query", [e.query for e in examples], "query")]
        if self.infonce_weight:
            sides.append(Side("positive", [e.positive for e in examples], "candidate"))
        sides.append(Side("candidates", cands, "candidate"))
        targets = {"index": index.to(device), "teacher": teacher.to(device)}
        if self.infonce_weight:
            keys = {c.id: k for e in examples for c, k in zip(e.negatives, e.neg_keys, strict=True)}
            targets["pos_ids"] = content_ids([e.pos_key for e in examples], device=device)
            targets["cand_ids"] = content_ids([keys[c.id] for c in cands], device=device)
            targets["query_pos_ids"] = positive_id_matrix([e.query_pos_keys for e in examples], device=device)
        return ObjectiveBatch(sides, targets)

    def loss(self, view: RankView, temperature: torch.Tensor) -> ObjectiveOutput:
        """This rank's share of the global-batch mean KL (+ w x InfoNCE when asked)."""
        local = view.local
        q, index, teacher = local["query"], local["index"], local["teacher"]
        kl = distill_kl_loss(q, local["candidates"], teacher, temperature, index=index, impl=self.impl)
        kl_sum = kl * q.shape[0]
        with torch.no_grad():  # how often the student's top candidate is the teacher's
            s = torch.einsum("bd,bkd->bk", q, local["candidates"][index.clamp(min=0)])
            valid = index >= 0
            agree = s.masked_fill(~valid, -torch.inf).argmax(1) == teacher.masked_fill(
                ~valid, -torch.inf
            ).argmax(1)
        logs = {"kl": kl_sum.detach() / view.total, "top1_agree": agree.float().sum() / view.total}
        if not self.infonce_weight:
            return ObjectiveOutput(kl_sum / view.total, logs)
        world = view.world
        labels = torch.arange(q.shape[0], device=q.device) + view.offset
        keep = first_occurrences(world["cand_ids"])  # ranks each encode shared candidates: count each once
        exclude = self.mask_false_negatives
        nce = info_nce_loss(
            q,
            torch.cat([world["positive"], world["candidates"][keep]]),
            labels,
            temperature,
            cand_ids=torch.cat([world["pos_ids"], world["cand_ids"][keep]]) if exclude else None,
            query_pos_ids=local["query_pos_ids"] if exclude else None,
            reduction="sum",
            impl=self.nce_impl,
        )
        logs["infonce"] = nce.detach() / view.total
        return ObjectiveOutput((kl_sum + self.infonce_weight * nce) / view.total, logs)
