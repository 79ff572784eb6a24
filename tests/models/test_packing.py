"""Sequence packing: packed rows give the padded path's vectors, and sequences never see each other."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES, random_image
from umarvel_cli.data.records import Record
from umarvel_cli.models.batching import plan_batches
from umarvel_cli.models.embedder import Embedder
from umarvel_cli.models.packing import (
    block_diagonal_mask,
    pack_batch,
    packed_model_inputs,
    sequence_positions,
)


def _records() -> list[Record]:
    """Texts and images of different lengths and sizes, with and without instructions."""
    return [
        Record("q1", "a red dog on the grass", random_image(1), "Find an image that matches the caption"),
        Record("q2", "hello world"),
        Record("q3", None, random_image(2, 90, 60)),
        Record(
            "q4", "a much longer text that goes on and on to force some padding in the batch", None, "Find"
        ),
        Record("q5", "two images worth of words", random_image(3, 44, 120), "Retrieve the passage"),
    ]


def _vectors(emb: Embedder, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return emb(batch)


SETTINGS = [
    {"pooling": "mean", "pool_tokens": "all"},
    {"pooling": "mean", "pool_tokens": "content"},
    {"pooling": "last", "pool_tokens": "all"},
    {"pooling": "mean", "pool_tokens": "all", "attention": "causal"},
    {"pooling": "last", "pool_tokens": "all", "position_ids": "sequential"},
]


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(s.values()))
def test_packed_forward_equals_padded(backbone, settings, tiny_models):
    emb = Embedder.from_pretrained(tiny_models[backbone], device="cpu", **settings)
    batch = emb.prepare(_records(), "query")
    assert not bool(batch["attention_mask"].all())  # the padded batch really pads
    packed = pack_batch(batch)
    total = int(batch["attention_mask"].sum())
    assert packed["input_ids"].shape == (1, total)
    padded_vecs, packed_vecs = _vectors(emb, batch), _vectors(emb, packed)
    assert packed_vecs.shape == (5, emb.dim)
    torch.testing.assert_close(packed_vecs, padded_vecs, rtol=0, atol=1e-5)
    assert (padded_vecs[0] - padded_vecs[1]).abs().max() > 1e-3  # distinct items, distinct vectors


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
@pytest.mark.parametrize("workers", [1, 2])
def test_encode_with_packing_equals_encode(backbone, workers, tiny_embedders):
    emb = tiny_embedders[backbone]
    records = _records() * 2
    padded = emb.encode(records, batch_size=4, workers=1)
    plan = plan_batches(emb.formatter.encode_many(records, "query"), 4, 200, packed=True)
    assert len(plan) > 1 and max(len(b) for b in plan) > 1  # several rows, several sequences per row
    packed = emb.encode(records, batch_size=4, workers=workers, pack=True, max_tokens=200)
    np.testing.assert_allclose(packed, padded, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_a_sequence_never_attends_to_another(backbone, tiny_embedders):
    """Perturb one sequence (same length): every other sequence's vector stays bit-identical."""
    emb = tiny_embedders[backbone]
    records = _records()
    changed = list(records)
    changed[2] = Record("q3", None, random_image(7, 90, 60))  # same size, other pixels
    changed[1] = Record("q2", "hello world")
    a, b = (pack_batch(emb.prepare(r, "query")) for r in (records, changed))
    assert torch.equal(a["seq_lengths"], b["seq_lengths"])
    va, vb = _vectors(emb, a), _vectors(emb, b)
    assert (va[2] - vb[2]).abs().max() > 1e-4  # the perturbed one moved
    for i in (0, 1, 3, 4):
        assert torch.equal(va[i], vb[i]), i


def test_block_diagonal_mask_and_positions():
    lengths = torch.tensor([2, 3, 1])
    mask = block_diagonal_mask(lengths, causal=False)[0, 0]
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    assert torch.equal(block_diagonal_mask(lengths, causal=True)[0, 0], expected.tril())
    assert sequence_positions(lengths).tolist() == [0, 1, 0, 1, 2, 0]


class _Item:
    def __init__(self, length: int) -> None:
        self.length, self.num_patches = length, 0


def test_packed_batches_are_sized_by_real_tokens():
    items = [_Item(n) for n in (100, 60, 50, 40, 30, 10, 300)]
    batches = plan_batches(items, batch_size=32, max_tokens=160, packed=True)
    assert batches == [[6], [0, 1], [2, 3, 4, 5]]  # 300 alone (over the budget), then <= 160 each
    assert all(sum(items[i].length for i in b) <= 160 for b in batches[1:])
    # the padded plan counts longest x count, so the same budget holds fewer items per batch
    assert plan_batches(items, batch_size=32, max_tokens=160) == [[6], [0], [1, 2], [3, 4, 5]]


@pytest.mark.gpu
@pytest.mark.skipif(
    os.environ.get("UMARVEL_TEST_ON_GPU") != "1", reason="UMARVEL_TEST_ON_GPU=1 on a CUDA machine"
)
@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_packed_equals_padded_on_the_gpu_in_bf16(backbone, tiny_models):
    """On CUDA in bf16 (flash-attention's varlen kernels when installed, else SDPA with the mask)."""
    emb = Embedder.from_pretrained(tiny_models[backbone], device="cuda", dtype=torch.bfloat16)
    batch = emb.prepare(_records(), "query")
    padded_vecs, packed_vecs = _vectors(emb, batch).float(), _vectors(emb, pack_batch(batch)).float()
    torch.testing.assert_close(packed_vecs, padded_vecs, rtol=0, atol=3e-2)
    assert float((packed_vecs * padded_vecs).sum(1).min()) > 0.999  # unit vectors: cosine


def test_flash_attention_inputs_follow_transformers_packed_convention(tiny_embedders):
    """With flash-attention: no mask, position_ids [4, 1, T] whose text row restarts at every
    sequence, so transformers' own boundary finder returns exactly the sequences' cumulative lengths."""
    from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

    emb = tiny_embedders["tiny-qwen2-vl"]
    packed = pack_batch(emb.prepare(_records(), "query"))
    inputs = packed_model_inputs(
        packed,
        torch.device("cpu"),
        "flash_attention_2",
        causal=False,
        sequential_positions=False,
        to_device=lambda t, d: t,
    )
    total = int(packed["seq_lengths"].sum())
    assert inputs["attention_mask"] is None and inputs["position_ids"].shape == (4, 1, total)
    assert torch.equal(inputs["position_ids"][1:], packed["position_ids"])
    (cu_q, cu_k), (max_q, _) = prepare_fa_kwargs_from_position_ids(inputs["position_ids"][0])
    expected = torch.cat([torch.zeros(1, dtype=torch.long), packed["seq_lengths"].cumsum(0)])
    assert cu_q.tolist() == cu_k.tolist() == expected.tolist()
    assert int(max_q) == int(packed["seq_lengths"].max())
    sdpa = packed_model_inputs(
        packed,
        torch.device("cpu"),
        "sdpa",
        causal=False,
        sequential_positions=False,
        to_device=lambda t, d: t,
    )
    assert sdpa["attention_mask"].shape == (1, 1, total, total) and sdpa["position_ids"].shape == (
        3,
        1,
        total,
    )


def test_packed_forward_gives_the_padded_gradients(tiny_models):
    """Training can differentiate through `forward(pack_batch(batch))`: same gradients as padded."""
    emb = Embedder.from_pretrained(tiny_models["tiny-qwen2-vl"], device="cpu")
    batch = emb.prepare(_records(), "query")
    weight = torch.randn(5, emb.dim, generator=torch.Generator().manual_seed(0))
    grads = []
    for b in (batch, pack_batch(batch)):
        emb.zero_grad(set_to_none=True)
        (emb(b) * weight).sum().backward()
        grads.append({n: p.grad.clone() for n, p in emb.backbone.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-5, msg=name)
