"""`Embedder.encode`'s fast path (header-only formatting, per-batch decoding, raw uint8 patches
folded into the patch embedding, several CPU batches at once) equals the plain path: each item
formatted eagerly, collated with normalised pixels and run alone through `forward`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models.tiny_models import TINY_BACKBONES
from umarvel_cli.data.records import Record


@pytest.fixture(scope="module")
def jpeg_records(tmp_path_factory) -> list[Record]:
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate([(64, 64), (120, 90), (33, 200), (240, 180), (90, 60), (150, 150)]):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        out.append(Record(f"i{i}", "a caption with words" if i % 2 else None, path))
    out += [Record(f"t{i}", "short text " * (i * 7 + 1)) for i in range(5)]
    return out


def _plain(emb, records, role):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is many times faster on a busy shared box
    try:
        with torch.inference_mode():
            return np.concatenate([emb.forward(emb.prepare([r], role)).numpy() for r in records])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_fast_encode_equals_one_item_at_a_time_through_forward(backbone, tiny_embedders, jpeg_records):
    emb = tiny_embedders[backbone]
    expected = _plain(emb, jpeg_records, "candidate")
    threads = torch.get_num_threads()
    for workers in (1, 2, 3):
        got = emb.encode(jpeg_records, batch_size=4, role="candidate", workers=workers)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        assert torch.get_num_threads() == threads  # the workers' thread setting is undone
    # one batch at a time, the next decoded in a background thread (what runs on GPU)
    encoded = emb.formatter.encode_many(jpeg_records, "candidate", defer_decode=True)
    got = emb.encode_inputs(encoded, batch_size=4, overlap=True, workers=1)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    # the raw pixels really are what the fast path feeds the model, and they reach the patch
    # embedding as uint8 (the model's own cast to its dtype leaves them alone)
    assert emb.raw_collator(encoded[:2])["pixel_values"].dtype == torch.uint8
    patch_embed = emb.backbone.visual.patch_embed
    fast_forward = patch_embed.forward
    seen: list[torch.dtype] = []

    def spy(hidden_states):
        seen.append(hidden_states.dtype)
        return fast_forward(hidden_states)

    patch_embed.forward = spy
    try:
        emb.encode(jpeg_records, batch_size=4, role="candidate", workers=1)
    finally:
        patch_embed.forward = fast_forward
    assert seen and set(seen) == {torch.uint8}


def test_parallel_encode_reports_every_batch_and_propagates_errors(tiny_embedders, jpeg_records, tmp_path):
    from umarvel_cli.errors import UmarvelError

    emb = tiny_embedders["tiny-qwen2-vl"]
    encoded = emb.formatter.encode_many(jpeg_records, "candidate", defer_decode=True)
    seen: list[int] = []
    emb.encode_inputs(encoded, batch_size=3, on_batch=seen.append, workers=2)
    assert sum(seen) == len(jpeg_records) and max(seen) <= 3
    data = jpeg_records[5].image.read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(UmarvelError, match=r"unreadable image \(item b\)"):
        emb.encode([*jpeg_records, Record("b", None, broken)], batch_size=2, workers=2)
