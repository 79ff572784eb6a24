"""The embedder on the three tiny families: build/save/load, bidirectional attention, pooling, invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.tiny_models import TINY_BACKBONES, random_image
from umarvel_cli.data.records import Record
from umarvel_cli.models.embedder import Embedder
from umarvel_cli.models.umarvel_config import UmarvelConfig


def _records() -> list[Record]:
    return [
        Record("q1", "a red dog on the grass", random_image(1), "Find an image that matches the caption"),
        Record("q2", "hello world"),
        Record("q3", None, random_image(2, 90, 60)),
        Record(
            "q4", "a much longer text that goes on and on to force some padding in the batch", None, "Find"
        ),
    ]


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_build_save_load_embed(backbone, tiny_models, tiny_embedders, tmp_path):
    emb = tiny_embedders[backbone]
    assert emb.config.family == backbone.removeprefix("tiny-")
    vecs = emb.encode(_records(), batch_size=2)
    assert vecs.shape == (4, 64) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.abs(vecs[0] - vecs[1]).max() > 1e-3  # different inputs, different vectors
    out = emb.save_pretrained(tmp_path / "saved")
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
        "umarvel.json",
    ):
        assert (out / name).is_file(), name
    again = Embedder.from_pretrained(out, device="cpu")
    np.testing.assert_allclose(again.encode(_records(), batch_size=2), vecs, atol=1e-6)


def _hidden(emb: Embedder, texts: list[str]) -> torch.Tensor:
    with torch.inference_mode():
        return emb.hidden_states(emb.prepare([Record(str(i), t) for i, t in enumerate(texts)]))


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_changing_a_later_token_changes_an_earlier_one_only_when_bidirectional(
    backbone, attention, tiny_models
):
    emb = Embedder.from_pretrained(tiny_models[backbone], device="cpu", attention=attention)
    cases = {
        "batch size 1": (["the cat sat"], ["the cat sax"]),
        "unpadded batch": (["the cat sat", "the dog ran"], ["the cat sax", "the dog ran"]),
        "padded batch": (["the cat sat", "a dog ran far away"], ["the cat sax", "a dog ran far away"]),
    }
    for name, (a, b) in cases.items():
        ha, hb = _hidden(emb, a), _hidden(emb, b)
        if name == "unpadded batch":
            assert emb.prepare([Record("0", a[0]), Record("1", a[1])])["attention_mask"].all()
        if name == "padded batch":
            assert not emb.prepare([Record("0", a[0]), Record("1", a[1])])["attention_mask"].all()
        first_diff = (ha[0, 0] - hb[0, 0]).abs().max().item()
        if attention == "bidirectional":
            assert first_diff > 1e-4, name
        else:
            assert first_diff == 0.0, name
        # the companion item is never affected
        if len(a) > 1:
            n = int(emb.prepare([Record("1", a[1])])["attention_mask"].sum())
            assert torch.allclose(ha[1, :n], hb[1, :n], atol=1e-5), name


def test_mean_pooling_excludes_instruction_and_padding(tiny_embedders):
    emb = tiny_embedders["tiny-qwen2-vl"]
    recs = [Record("a", "short", None, "Find this"), Record("b", "a much longer text than the first one")]
    batch = emb.prepare(recs)
    span = emb.formatter.encode(recs[0], "query").instruction_span
    assert span is not None
    ids = batch["input_ids"][0]
    assert ids[span[0]] == emb.formatter.inst_start_id and ids[span[1] - 1] == emb.formatter.inst_end_id
    n0 = int(batch["attention_mask"][0].sum())
    assert n0 < batch["input_ids"].shape[1]  # item 0 is padded
    keep = torch.ones(n0, dtype=torch.bool)
    keep[span[0] : span[1]] = False
    assert torch.equal(batch["pool_mask"][0, :n0], keep) and not batch["pool_mask"][0, n0:].any()
    with torch.inference_mode():
        hidden = emb.hidden_states(batch)
        vecs = emb(batch)
    manual = hidden[0, :n0][keep].mean(0)
    torch.testing.assert_close(vecs[0], manual / manual.norm(), atol=1e-5, rtol=1e-5)
    # an instruction changes the tokens attended to but is itself not averaged
    with_all = hidden[0, :n0].mean(0)
    assert (vecs[0] - with_all / with_all.norm()).abs().max() > 1e-4


def test_last_token_pooling_takes_the_last_non_pad_token(tiny_models):
    emb = Embedder.from_pretrained(tiny_models["tiny-qwen2-vl"], device="cpu", pooling="last")
    batch = emb.prepare([Record("a", "short"), Record("b", "a much longer text than the first one")])
    with torch.inference_mode():
        hidden = emb.hidden_states(batch)
        vecs = emb(batch)
    n0 = int(batch["attention_mask"][0].sum())
    torch.testing.assert_close(vecs[0], hidden[0, n0 - 1] / hidden[0, n0 - 1].norm(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_embedding_does_not_depend_on_batch_size_companions_or_padding(backbone, tiny_embedders):
    emb = tiny_embedders[backbone]
    recs = _records()
    alone = np.concatenate([emb.encode([r], batch_size=1) for r in recs])
    together = emb.encode(recs, batch_size=4)
    reversed_order = emb.encode(recs[::-1], batch_size=3)[::-1]
    extra = [Record("z", "x " * 60, random_image(9, 120, 90)), *recs]
    with_companion = emb.encode(extra, batch_size=5)[1:]
    for other in (together, reversed_order, with_companion):
        np.testing.assert_allclose(other, alone, atol=2e-5)


def test_sequential_positions_differ_from_mrope_on_images(tiny_models, tiny_embedders):
    mrope = tiny_embedders["tiny-qwen2-vl"]
    seq = Embedder.from_pretrained(tiny_models["tiny-qwen2-vl"], device="cpu", position_ids="sequential")
    image_rec = [Record("i", "a photo", random_image(3, 112, 112))]
    text_rec = [Record("t", "plain text only")]
    assert np.abs(seq.encode(image_rec) - mrope.encode(image_rec)).max() > 1e-5
    # with no image, M-RoPE's three sections are the same 1-D positions
    np.testing.assert_allclose(seq.encode(text_rec), mrope.encode(text_rec), atol=1e-6)


def test_temperature_round_trips_through_umarvel_json(tiny_models, tmp_path):
    emb = Embedder.from_pretrained(tiny_models["tiny-qwen3-vl"], device="cpu")
    assert emb.log_temperature.item() == pytest.approx(np.log(0.05), abs=1e-6)
    emb.log_temperature.data.fill_(-1.5)
    out = emb.save_pretrained(tmp_path / "m")
    cfg = UmarvelConfig.load(out)
    assert cfg.log_temperature == pytest.approx(-1.5) and cfg.temperature == pytest.approx(np.exp(-1.5))
    assert Embedder.from_pretrained(out, device="cpu").log_temperature.item() == pytest.approx(-1.5)


def test_forward_is_differentiable(tiny_models):
    emb = Embedder.from_pretrained(tiny_models["tiny-qwen2.5-vl"], device="cpu")
    emb.train()
    vecs = emb(emb.prepare(_records()[:2]))
    vecs.sum().backward()
    grads = [p.grad for p in emb.backbone.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
