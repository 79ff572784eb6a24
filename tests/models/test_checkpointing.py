"""Activation checkpointing is switched on whichever name the installed transformers uses."""

from __future__ import annotations

import torch

from tests.models.tiny_models import random_image
from umarvel_cli.data.records import Record
from umarvel_cli.models.checkpointing import enable_activation_checkpointing


class OldTransformersModel:
    """Only the pre-5.24 method, as in transformers 5.17."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.calls.append(gradient_checkpointing_kwargs)


def test_old_name_is_used_when_the_new_one_is_missing():
    model = OldTransformersModel()
    enable_activation_checkpointing(model)
    assert model.calls == [{"use_reentrant": False}]


def _grads(model_dir, checkpointing: bool) -> dict[str, torch.Tensor]:
    from umarvel_cli.models.embedder import Embedder

    emb = Embedder.from_pretrained(model_dir, device="cpu")
    if checkpointing:
        enable_activation_checkpointing(emb.backbone)
    emb.train()
    records = [Record("a", "a red dog", random_image(1), "Find an image"), Record("b", "hello world")]
    emb(emb.prepare(records, "query")).pow(2).sum().backward()
    layers = [m for m in emb.backbone.modules() if getattr(m, "gradient_checkpointing", False)]
    assert bool(layers) == checkpointing
    return {n: p.grad.clone() for n, p in emb.backbone.named_parameters() if p.grad is not None}


def test_tiny_backbone_same_gradients_with_checkpointing(tiny_models):
    plain = _grads(tiny_models["tiny-qwen2-vl"], checkpointing=False)
    ckpt = _grads(tiny_models["tiny-qwen2-vl"], checkpointing=True)
    assert plain.keys() == ckpt.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)
