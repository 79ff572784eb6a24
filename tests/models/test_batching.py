"""Length-bucketed batch planning and the CUDA out-of-memory retry of `encode_inputs`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.tiny_models import random_image
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.batching import plan_batches
from umarvel_cli.models.inputs.encoded import EncodedInput


def _items(lengths):
    return [EncodedInput(np.zeros(n, dtype=np.int64), None) for n in lengths]


def test_batches_are_longest_first_and_capped_by_count_and_tokens():
    items = _items([5, 50, 7, 48, 6, 49, 100])
    assert plan_batches(items, batch_size=3, max_tokens=10_000) == [[6, 1, 5], [3, 2, 4], [0]]
    # the 100-token item alone; then padded size (count x first length) stays <= 100
    assert plan_batches(items, batch_size=8, max_tokens=100) == [[6], [1, 5], [3, 2], [4, 0]]
    flat = sorted(i for b in plan_batches(items, 2) for i in b)
    assert flat == list(range(7))


def _records():
    return [Record(str(i), "word " * (i + 1), random_image(i) if i % 2 else None) for i in range(9)]


def test_out_of_memory_splits_the_batch_and_gives_the_same_vectors(tiny_embedders, monkeypatch):
    emb = tiny_embedders["tiny-qwen2-vl"]
    expected = emb.encode(_records(), batch_size=8)
    real_forward = type(emb).forward
    seen = []

    def forward_with_small_memory(self, batch):
        seen.append(batch["input_ids"].shape[0])
        if batch["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(self, batch)

    monkeypatch.setattr(type(emb), "forward", forward_with_small_memory)
    got = emb.encode(_records(), batch_size=8, workers=1)  # one batch at a time: the GPU path
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert seen[0] == 8 and max(seen[1:]) <= 4 and seen.count(1) + seen.count(2) >= 5
    # the same with the next batch collated in a background thread (what runs on GPU)
    encoded = emb.formatter.encode_many(_records(), "query", defer_pixels=True)
    np.testing.assert_allclose(emb.encode_inputs(encoded, 8, overlap=True, workers=1), expected, atol=2e-5)

    def always_oom(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(type(emb), "forward", always_oom)
    with pytest.raises(UmarvelError, match="out of GPU memory with batch size 1"):
        emb.encode(_records()[:2], batch_size=2, workers=1)


def test_several_batches_collating_ahead_give_the_same_vectors_in_order(tiny_embedders, monkeypatch):
    from umarvel_cli.models import embedder as embedder_module

    emb = tiny_embedders["tiny-qwen2-vl"]
    encoded = emb.formatter.encode_many(_records(), "query", defer_pixels=True)
    expected = emb.encode_inputs(encoded, 2, overlap=False, workers=1)
    monkeypatch.setattr(embedder_module, "collate_ahead", lambda: 3)  # as on a GPU machine's cores
    done: list[int] = []
    got = emb.encode_inputs(encoded, 2, overlap=True, workers=1, on_batch=done.append)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert sum(done) == len(encoded) and len(done) == 5


def test_run_batches_serves_any_per_item_function_in_input_order():
    """The batching helper outside the embedder (what a reranker's scorer uses): one score per item."""
    from umarvel_cli.models.batching import run_batches

    items = _items([3, 9, 4, 9, 1, 7, 2])
    batches = plan_batches(items, batch_size=3)

    def collate(batch_items):
        return torch.tensor([it.length for it in batch_items], dtype=torch.float32)

    calls = []

    def score(lengths):
        calls.append(len(lengths))
        if len(lengths) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return lengths * 10

    expected = np.array([30, 90, 40, 90, 10, 70, 20], dtype=np.float32)
    done: list[int] = []
    got = run_batches(items, batches, collate, score, np.zeros(7, np.float32), ahead=2, on_batch=done.append)
    np.testing.assert_array_equal(got, expected)
    assert sum(done) == 7 and calls.count(3) == 2 and max(done) <= 2  # full batches split in two
    got = run_batches(items, batches, collate, lambda x: x * 10, np.zeros(7, np.float32), workers=2)
    np.testing.assert_array_equal(got, expected)
