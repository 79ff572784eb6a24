"""Content ids: stable, non-negative, padded matrices."""

from __future__ import annotations

import pytest
import torch

from umarvel_cli.losses.ids import content_id, content_ids, positive_id_matrix


def test_content_id_is_stable_and_non_negative():
    # blake2b(b"mscoco:123", digest_size=8), little-endian, sign bit cleared: fixed across processes
    import hashlib

    raw = int.from_bytes(hashlib.blake2b(b"mscoco:123", digest_size=8).digest(), "little")
    assert content_id("mscoco:123") == raw & (2**63 - 1)
    ids = content_ids(["a", "b", "a", ""])
    assert ids.dtype == torch.int64 and bool((ids >= 0).all())
    assert ids[0] == ids[2] and ids[0] != ids[1]


def test_positive_id_matrix_pads_with_minus_one():
    m = positive_id_matrix([["a", "b"], [], ["c"]])
    assert m.shape == (3, 2)
    assert m[1].tolist() == [-1, -1]
    assert m[0, 1] == content_id("b") and m[2, 1] == -1
    assert positive_id_matrix([[], []]).shape == (2, 1)
    with pytest.raises(ValueError, match="3 positives but width is 2"):
        positive_id_matrix([["a", "b", "c"]], width=2)
