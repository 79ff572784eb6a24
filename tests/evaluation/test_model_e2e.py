"""`eval mbeir --model` with the real embedder and a tiny model, on two tasks of the demo tables."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.models.tiny_models import tiny_model_dir
from umarvel_cli.artifacts import TABLES, ShardWriter, read_manifest, read_table, write_manifest
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation import evaluate_mbeir
from umarvel_cli.retrieval.embeddings import open_embeddings

KEEP_POOLS = ["mscoco_task0_test", "webqa_task1"]


@pytest.fixture(scope="module")
def two_task_tables(demo_tables, tmp_path_factory):
    """The demo tables cut down to mscoco_task0 and webqa_task1 (queries and pools), to keep embedding short."""
    out = tmp_path_factory.mktemp("two-tasks") / "tables"
    shutil.copytree(demo_tables, out)
    q = read_table(demo_tables, "queries")
    combo = pc.add(
        pc.multiply(pc.cast(q.column("dataset_id"), "int32"), 100), pc.cast(q.column("task_id"), "int32")
    )
    q = q.filter(pc.is_in(combo, value_set=pa.array([900, 201], "int32")))
    p = read_table(demo_tables, "pools")
    p = p.filter(pc.is_in(p.column("pool"), value_set=pa.array(KEEP_POOLS)))
    manifest = read_manifest(out)
    for table, rows in (("queries", q), ("pools", p)):
        with ShardWriter(out, table, TABLES[table]) as w:
            w.write_batch(rows)
        manifest.counts[table] = rows.num_rows  # the cut tables are complete as counted
    write_manifest(out, manifest)
    return out


def test_model_local_then_global_reuses_embeddings(two_task_tables, tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    out = tmp_path / "eval"
    local = evaluate_mbeir(two_task_tables, "test", "local", out, model=model)
    assert [t["task"] for t in local["tasks"]] == ["mscoco_task0", "webqa_task1"]
    pools = read_table(two_task_tables, "pools").column("pool").to_pylist()
    sizes = {p: pools.count(p) for p in KEEP_POOLS}
    searched = {s["group"]: s["candidates"] for s in local["search"]["searched"]}
    assert searched == {"mscoco_task0": sizes["mscoco_task0_test"], "webqa_task1": sizes["webqa_task1"]}
    for t in local["tasks"]:
        assert 0.0 <= t["score"] <= 1.0 and t["n_without_results"] == 0
        assert 0.0 < local["chance"][t["task"]] < 1.0  # a random ranking of the pool
    stamp = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in (out / "embeddings").iterdir()}
    assert set(stamp) == {"queries", "pool-mscoco_task0_test", "pool-webqa_task1"}
    dim = open_embeddings(out / "embeddings" / "queries").dim
    assert open_embeddings(out / "embeddings" / "pool-webqa_task1").dim == dim

    # a shallower search: the same embeddings, the same headline, no hit@50/100
    shallow = evaluate_mbeir(two_task_tables, "test", "local", out, model=model, topk=10)
    assert {p.name: (p / "manifest.json").stat().st_mtime_ns for p in (out / "embeddings").iterdir()} == stamp
    for lt, st in zip(local["tasks"], shallow["tasks"], strict=True):
        assert st["score"] == lt["score"] and "hit@10" in st["metrics"]
        assert "hit@50" not in st["metrics"] and "hit@100" not in st["metrics"]
    with pytest.raises(UmarvelError, match=r"--topk 5 is below the deepest headline cut-off \(Recall@10\)"):
        evaluate_mbeir(two_task_tables, "test", "local", out, model=model, topk=5)

    glob = evaluate_mbeir(two_task_tables, "test", "global", out, model=model)
    assert {p.name: (p / "manifest.json").stat().st_mtime_ns for p in (out / "embeddings").iterdir()} == stamp
    union = sum(sizes.values())
    assert glob["search"]["searched"] == [
        {"group": "union", "queries": sum(t["n_queries"] for t in local["tasks"]), "candidates": union}
    ]
    # the union holds each local pool in the same order, so exact search can only push a positive
    # down: no task's hit rate is higher globally than locally
    for lt, gt in zip(local["tasks"], glob["tasks"], strict=True):
        for k in (1, 5, 10, 50, 100):
            assert gt["metrics"][f"hit@{k}"] <= lt["metrics"][f"hit@{k}"] + 1e-9
