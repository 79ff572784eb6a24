"""Activation checkpointing across transformers versions.

transformers 5.24 renamed `gradient_checkpointing_enable` to `activation_checkpointing_enable` (the
old name warns); 5.17, which GPU machines here ship, only has the old one.
"""

from __future__ import annotations

from typing import Any


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in the backward (non-reentrant, so LoRA-only grads work)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
