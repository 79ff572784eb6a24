"""The reranker stage's objective: next-token cross-entropy on the answer token (spec 6.1).

Every example brings its query, one positive and one mined negative (`RerankSet`): two prompts from
the one input pipeline, (query, positive) answered "Yes" and (query, negative) answered "No". The
loss is the reranker's `answer_loss` over the whole vocabulary at the answer position; the model is
a `Reranker`, not an embedder, so this objective runs it itself (`runs_model`). Rows are prompts:
this rank's share of the global mean is the local mean x local rows / all ranks' rows.
"""

from __future__ import annotations

import torch

from umarvel_cli import distributed as D
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.config import TrainConfig
from umarvel_cli.training.data import TrainExample
from umarvel_cli.training.objectives.base import Objective, ObjectiveBatch, ObjectiveOutput


class RerankAnswerCE(Objective):
    name = "rerank"
    runs_model = True

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> RerankAnswerCE:
        if cfg.chunk_size:
            raise UmarvelError(
                "the rerank stage has no GradCache (a pointwise loss)", field="chunk_size", expected="0"
            )
        return cls()

    def batch(self, examples: list[TrainExample], device: torch.device) -> ObjectiveBatch:
        """[(query, positive), (query, negative)] per example; `positive` marks the "Yes" rows."""
        wrong = next((e for e in examples if len(e.negatives) != 1), None)
        if wrong is not None:
            raise UmarvelError(
                f"example {wrong.query.id!r} has {len(wrong.negatives)} negatives",
                field="hard_negatives",
                expected="exactly 1 per example (RerankSet draws one)",
            )
        pairs = [pair for e in examples for pair in ((e.query, e.positive), (e.query, e.negatives[0]))]
        positive = torch.tensor([i % 2 == 0 for i in range(len(pairs))], dtype=torch.bool, device=device)
        return ObjectiveBatch(sides=[], targets={"positive": positive}, pairs=pairs)

    def model_loss(self, model: torch.nn.Module, batch: ObjectiveBatch) -> ObjectiveOutput:
        positive = batch.targets["positive"]
        inputs = model.collator(model.encode_pairs(batch.pairs))  # type: ignore[operator]
        mean = model.answer_loss(inputs, positive)  # type: ignore[operator]
        n = positive.shape[0]
        _, total = D.shard_offset(n, positive.device)
        return ObjectiveOutput(mean * (n / total))
