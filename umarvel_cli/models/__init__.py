"""Backbone registry, attention, pooling, LoRA and the embedder."""
