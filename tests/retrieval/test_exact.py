from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from tests.retrieval.fixtures import brute_force, tie_heavy_vectors, write_embeddings
from umarvel_cli.errors import UmarvelError
from umarvel_cli.retrieval.embeddings import ids_in, normalize_rows, open_embeddings
from umarvel_cli.retrieval.exact import chain_sets, exact_search
from umarvel_cli.retrieval.topk import merge_topk, tile_topk


def test_tile_topk_breaks_ties_by_lowest_position():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 3.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    v, i = tile_topk(scores, 2, offset=10)
    assert i.tolist() == [[11, 12], [15, 14]]
    assert v.tolist() == [[3.0, 3.0], [5.0, 4.0]]
    v, i = tile_topk(scores, 4)
    assert i.tolist() == [[1, 2, 4, 5], [5, 4, 3, 2]]


def test_merge_keeps_earlier_positions_first_on_ties():
    v, i = merge_topk(
        torch.tensor([[2.0, 1.0]]),
        torch.tensor([[0, 1]]),
        torch.tensor([[2.0, 1.0]]),
        torch.tensor([[5, 6]]),
        3,
    )
    assert i.tolist() == [[0, 5, 1]]


@pytest.mark.parametrize("rows_per_shard,block,query_block", [(7, 5, 3), (1000, 65536, 4096), (3, 2, 1)])
def test_streaming_equals_brute_force_with_ties(tmp_path, rows_per_shard, block, query_block):
    c = tie_heavy_vectors(53, seed=1)
    q = tie_heavy_vectors(11, seed=2)
    ids = [f"d{i}" for i in range(len(c))]
    write_embeddings(tmp_path / "c", ids, c, rows_per_shard=rows_per_shard)
    cset = open_embeddings(tmp_path / "c")
    assert (cset.dim, cset.count, cset.dtype) == (16, 53, "float32")
    res = exact_search(q, cset.iter_blocks(rows=block), k=10, query_block=query_block)
    ref_s, ref_i = brute_force(q, c, 10)
    assert res.indices.tolist() == ref_i.tolist()
    np.testing.assert_array_equal(res.scores, ref_s.astype(np.float32))
    assert res.candidate_ids.to_pylist() == ids
    # ties really happen in this data, so the tie rule is exercised
    assert any(len(set(row)) < len(row) for row in ref_s.tolist())


def test_streaming_equals_brute_force_random_float16(tmp_path):
    rng = np.random.default_rng(0)
    c = normalize_rows(rng.standard_normal((300, 32)).astype(np.float32))
    q = normalize_rows(rng.standard_normal((40, 32)).astype(np.float32))
    write_embeddings(tmp_path / "c", [f"d{i}" for i in range(300)], c, rows_per_shard=64, dtype="float16")
    cset = open_embeddings(tmp_path / "c")
    assert cset.dtype == "float16"
    c16 = normalize_rows(c.astype(np.float16).astype(np.float32))
    res = exact_search(q, cset.iter_blocks(rows=50), k=25, query_block=16)
    _, ref_i = brute_force(q, c16, 25)
    assert res.indices.tolist() == ref_i.tolist()


def test_fewer_candidates_than_k_and_filters(tmp_path):
    c = tie_heavy_vectors(6, seed=3)
    q = tie_heavy_vectors(2, seed=4)
    ids = [f"d{i}" for i in range(6)]
    write_embeddings(tmp_path / "c", ids, c, rows_per_shard=4)
    cset = open_embeddings(tmp_path / "c")
    res = exact_search(q, cset.iter_blocks(rows=3), k=100)
    assert res.indices.shape == (2, 6)
    keep = {"d1", "d4", "d5"}
    res = exact_search(q, cset.iter_blocks(rows=3, keep=ids_in(keep)), k=100)
    assert res.candidate_ids.to_pylist() == ["d1", "d4", "d5"]
    _, ref_i = brute_force(q, c[[1, 4, 5]], 3)
    assert res.indices.tolist() == ref_i.tolist()


def test_chain_sets_dedupes_union(tmp_path):
    c = tie_heavy_vectors(8, seed=5)
    write_embeddings(tmp_path / "a", [f"d{i}" for i in range(5)], c[:5], rows_per_shard=2)
    write_embeddings(tmp_path / "b", ["d3", "d4", "d5", "d6", "d7"], c[3:], rows_per_shard=2)
    sets = [open_embeddings(tmp_path / "a"), open_embeddings(tmp_path / "b")]
    ids = pa.concat_arrays([i for i, _ in chain_sets(sets, rows=3, dedupe=True)]).to_pylist()
    assert ids == [f"d{i}" for i in range(8)]
    with_dupes = pa.concat_arrays([i for i, _ in chain_sets(sets, rows=3)]).to_pylist()
    assert len(with_dupes) == 10


def test_dimension_mismatch_and_bad_values(tmp_path):
    write_embeddings(tmp_path / "c", ["a", "b"], tie_heavy_vectors(2))
    with pytest.raises(UmarvelError, match="dimension 16, queries 8"):
        exact_search(np.ones((1, 8), np.float32), open_embeddings(tmp_path / "c").iter_blocks(), k=1)
    bad = np.ones((2, 4), np.float32)
    bad[1, 2] = np.nan
    write_embeddings(tmp_path / "n", ["a", "b"], bad)
    with pytest.raises(UmarvelError, match="NaN"):
        list(open_embeddings(tmp_path / "n").iter_blocks())
    with pytest.raises(UmarvelError, match="no embeddings table"):
        open_embeddings(tmp_path / "nothing")


def test_pick_device_prefers_the_rank_gpu_when_torch_sees_one(monkeypatch):
    from umarvel_cli.retrieval.exact import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [pick_device(), pick_device("auto", 3), pick_device("cpu", 3)] == ["cpu", "cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert [pick_device(), pick_device(None, 0), pick_device("auto", 3)] == ["cuda", "cuda:0", "cuda:3"]
    assert pick_device("cpu", 3) == "cpu"  # an explicit device is kept
