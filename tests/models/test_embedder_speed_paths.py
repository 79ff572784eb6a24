"""`Embedder.encode`'s speed paths change no vector: images decoded ahead while formatting (on with
several CPU workers) or not, the fast vision attention or transformers' own, any batch size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.models.tiny_models import TINY_BACKBONES
from umarvel_cli.data.records import Record
from umarvel_cli.models.attention import restore_vision_attention, speed_up_vision_attention


@pytest.fixture(scope="module")
def mixed_records(tmp_path_factory) -> list[Record]:
    """JPEG files with repeated sizes (equal-length images share a vision attention call) and texts."""
    folder = tmp_path_factory.mktemp("speed_jpegs")
    rng = np.random.default_rng(3)
    out = []
    for i, (w, h) in enumerate([(64, 64), (64, 64), (120, 90), (64, 64), (120, 90), (90, 150), (33, 70)]):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        out.append(Record(f"i{i}", "a photo of words" if i % 3 == 0 else None, path))
    return out + [Record(f"t{i}", "some words here " * (2 * i + 1)) for i in range(4)]


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_speed_paths_give_the_same_vectors(backbone, tiny_embedders, mixed_records):
    emb = tiny_embedders[backbone]
    sequential = emb.encode(mixed_records, batch_size=4, role="candidate", workers=1)  # no decode-ahead
    parallel = emb.encode(mixed_records, batch_size=4, role="candidate", workers=2)  # decode-ahead on
    np.testing.assert_allclose(parallel, sequential, atol=1e-6, rtol=0)
    for batch_size in (1, 3, 16):
        got = emb.encode(mixed_records, batch_size=batch_size, role="candidate", workers=2)
        np.testing.assert_allclose(got, sequential, atol=1e-5, rtol=0)
    restore_vision_attention(emb.backbone)
    try:
        stock = emb.encode(mixed_records, batch_size=4, role="candidate", workers=2)
    finally:
        speed_up_vision_attention(emb.backbone)
    np.testing.assert_allclose(stock, sequential, atol=1e-6, rtol=0)
    norms = np.linalg.norm(sequential, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in sequential}) == len(mixed_records)  # real, distinct vectors
