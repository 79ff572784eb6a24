"""A toy text encoder for trainer tests: hashed character trigrams -> bag embedding -> MLP -> unit vector.

It learns fast on CPU and has dropout, so RNG replay and resume determinism are really exercised.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from umarvel_cli.data.records import Record

BUCKETS = 512


def trigram_ids(text: str) -> list[int]:
    padded = f"  {text.lower()} "
    return [zlib.crc32(padded[i : i + 3].encode()) % BUCKETS for i in range(len(padded) - 2)]


class ToyEncoder(torch.nn.Module):
    def __init__(self, dim: int = 16, dropout: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.bag = torch.nn.EmbeddingBag(BUCKETS, 32, mode="mean")
        self.proj = torch.nn.Linear(32, dim)
        with torch.no_grad():
            self.bag.weight.copy_(torch.randn(BUCKETS, 32, generator=g))
            self.proj.weight.copy_(torch.randn(dim, 32, generator=g) / 32**0.5)
            self.proj.bias.zero_()
        self.dropout = torch.nn.Dropout(dropout)
        self.log_temperature = torch.nn.Parameter(torch.tensor(0.05).log())

    def prepare(self, records: Sequence[Record], role: str) -> list[str]:
        """The trainer's model contract: records -> model inputs (instructions only on queries)."""
        return [
            f"{r.instruction} {r.text}" if role == "query" and r.instruction else (r.text or str(r.image))
            for r in records
        ]

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        ids = [trigram_ids(t) for t in texts]
        flat = torch.tensor([i for row in ids for i in row], dtype=torch.long)
        offsets = torch.tensor([0] + [len(r) for r in ids[:-1]], dtype=torch.long).cumsum(0)
        return F.normalize(self.proj(self.dropout(self.bag(flat, offsets))), dim=-1)
