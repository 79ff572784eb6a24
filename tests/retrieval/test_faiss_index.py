from __future__ import annotations

import json

import numpy as np
import pytest

from tests.retrieval.fixtures import brute_force, tie_heavy_vectors, write_embeddings
from umarvel_cli.errors import UmarvelError
from umarvel_cli.retrieval.embeddings import open_embeddings
from umarvel_cli.retrieval.faiss_index import build_index, load_index, search_index

pytest.importorskip("faiss")


@pytest.fixture
def pool(tmp_path):
    c = tie_heavy_vectors(60, seed=11)
    ids = [f"c{i:03d}" for i in range(60)]
    write_embeddings(tmp_path / "emb", ids, c, rows_per_shard=13)
    return tmp_path, c, ids


def test_flat_index_equals_brute_force_including_ties(pool):
    tmp, c, ids = pool
    m = build_index(tmp / "emb", tmp / "idx", gpu=False)
    assert m.counts == {"vectors": 60}
    assert m.extra["device"] == "cpu" and m.extra["exact"] is True and m.extra["factory"] == "Flat"
    q = tie_heavy_vectors(9, seed=12)
    loaded = load_index(tmp / "idx", gpu=False)
    res = search_index(loaded, q, k=7, query_block=4)
    ref_s, ref_i = brute_force(q, c, 7)
    assert res.indices.tolist() == ref_i.tolist()
    np.testing.assert_array_equal(res.scores, ref_s.astype(np.float32))
    assert res.candidate_ids.to_pylist() == ids
    # k beyond the pool: every candidate once, in rule order
    res = search_index(loaded, q, k=500)
    assert res.indices.tolist() == brute_force(q, c, 60)[1].tolist()


def test_up_to_date_and_force(pool):
    tmp, _, _ = pool
    build_index(tmp / "emb", tmp / "idx", gpu=False)
    before = (tmp / "idx" / "index.faiss").stat().st_mtime_ns
    build_index(tmp / "emb", tmp / "idx", gpu=False)
    assert (tmp / "idx" / "index.faiss").stat().st_mtime_ns == before
    build_index(tmp / "emb", tmp / "idx", gpu=False, force=True)
    assert json.loads((tmp / "idx" / "manifest.json").read_text())["stage"] == "index"


def test_trained_index_on_a_sample(pool):
    tmp, c, _ = pool
    m = build_index(tmp / "emb", tmp / "ivf", factory="IVF2,Flat", gpu=False, train_size=40)
    assert m.extra["trained_on"] == 40 and m.extra["exact"] is False
    loaded = load_index(tmp / "ivf", gpu=False)
    loaded.index.nprobe = 2  # probing every list makes IVF exhaustive
    q = tie_heavy_vectors(5, seed=13)
    res = search_index(loaded, q, k=5)
    np.testing.assert_array_equal(res.scores, brute_force(q, c, 5)[0].astype(np.float32))


def test_bad_factory_and_missing_gpu(pool):
    tmp, _, _ = pool
    with pytest.raises(UmarvelError, match="--factory"):
        build_index(tmp / "emb", tmp / "bad", factory="NoSuchIndex7")
    import faiss

    if faiss.get_num_gpus() == 0:
        with pytest.raises(UmarvelError, match="--device"):
            build_index(tmp / "emb", tmp / "g", gpu=True)
    assert open_embeddings(tmp / "emb").count == 60


def test_approximate_index_with_missing_results_writes_only_real_rows(pool):
    import pyarrow as pa

    from umarvel_cli.retrieval.run_table import iter_run_batches

    tmp, _, _ = pool
    build_index(tmp / "emb", tmp / "ivf", factory="IVF8,Flat", gpu=False, train_size=60)
    loaded = load_index(tmp / "ivf", gpu=False)
    loaded.index.nprobe = 1  # one list of 8 holds fewer than 50 vectors: faiss pads with -1
    res = search_index(loaded, tie_heavy_vectors(3, seed=14), k=50)
    real = (res.indices >= 0).sum(axis=1)
    assert (real < 50).all() and (real > 0).all()
    assert all(
        (row[:n] >= 0).all() and (row[n:] == -1).all() for row, n in zip(res.indices, real, strict=True)
    )
    table = pa.concat_tables(iter_run_batches(pa.array(["a", "b", "c"]), res))
    assert table.num_rows == int(real.sum())
    ranks_a = [r["rank"] for r in table.to_pylist() if r["qid"] == "a"]
    assert ranks_a == list(range(1, int(real[0]) + 1))


def test_index_goes_to_the_gpus_when_faiss_reports_some(pool, monkeypatch):
    """The GPU route, with a faiss that reports two GPUs: the index is sharded over them for
    building and searching and brought back to the CPU to be written. The stand-in "GPU index" is
    the CPU one, so the results must equal brute force exactly as on the CPU route."""
    import sys
    import types

    import faiss as real

    calls: list = []

    class FakeGpuFaiss(types.ModuleType):
        def __getattr__(self, name):
            return getattr(real, name)

        def get_num_gpus(self):
            return 2

        def GpuMultipleClonerOptions(self):  # noqa: N802 (faiss's name)
            return types.SimpleNamespace(shard=False)

        def index_cpu_to_all_gpus(self, index, co=None):
            calls.append(("to_gpus", co.shard))
            return index

        def index_gpu_to_cpu(self, index):
            calls.append("to_cpu")
            return index

    monkeypatch.setitem(sys.modules, "faiss", FakeGpuFaiss("faiss"))
    tmp, c, _ = pool
    built = build_index(tmp / "emb", tmp / "gpu_idx")
    assert built.extra["device"] == "gpu x2 (sharded)"
    assert calls == [("to_gpus", True), "to_cpu"]
    loaded = load_index(tmp / "gpu_idx")
    assert loaded.device == "gpu x2 (sharded)" and calls[2:] == [("to_gpus", True)]
    q = tie_heavy_vectors(9, seed=12)
    res = search_index(loaded, q, k=7, query_block=4)
    assert res.indices.tolist() == brute_force(q, c, 7)[1].tolist()
    assert load_index(tmp / "gpu_idx", gpu=False).device == "cpu" and len(calls) == 3  # --no-gpu stays
