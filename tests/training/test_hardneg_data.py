"""HardNegativeSet: mbeir examples plus exactly k mined negatives, and the checks on the mined folder."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest

from tests.models.tiny_models import tiny_model_dir
from umarvel_cli.artifacts import TABLES, ShardWriter, read_table
from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining import make_settings, run_mine
from umarvel_cli.training.hardneg_data import HardNegativeSet

K = 3


@pytest.fixture(scope="module")
def mined(demo_tables, tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    out = tmp_path_factory.mktemp("hardneg") / "mined"
    run_mine(
        model,
        demo_tables,
        out,
        make_settings(topk=20, rank_range="1-20", num_negatives=K),
        embeddings=out.parent / "emb",
    )
    return model, out


def test_every_example_has_k_negatives_from_its_row(mined, demo_tables):
    model, out = mined
    ds = HardNegativeSet(demo_tables, out, model, K, "first", seed=0)
    rows = {r["qid"]: r for r in read_table(out, "mined").to_pylist()}
    seen_short = seen_empty = 0
    for i in range(len(ds)):
        ex = ds.example(i, epoch=0)
        row = rows[ex.query.id]
        negs = [r.id for r in ex.negatives]
        assert len(negs) == len(ex.neg_keys) == K
        if row["neg_ids"]:
            assert negs == [row["neg_ids"][j % len(row["neg_ids"])] for j in range(K)]
            seen_short += len(row["neg_ids"]) < K
        else:
            seen_empty += 1
            task_negs = {d for r in rows.values() if r["task"] == row["task"] for d in r["neg_ids"]}
            assert set(negs) <= (task_negs or {d for r in rows.values() for d in r["neg_ids"]})
            assert not set(ex.neg_keys) & set(ex.query_pos_keys)
            assert [r.id for r in ds.example(i, epoch=0).negatives] == negs  # seeded per (epoch, index)
        assert ex.pos_key in ex.query_pos_keys and all(k.startswith(("s:", "c:")) for k in ex.neg_keys)
    assert seen_short and seen_empty  # the untrained model leaves both kinds of rows on the tiny demo
    assert ds.describe()["hard_negatives"] == K


def test_unfiltered_column_for_the_ablation(mined, demo_tables):
    model, out = mined
    ds = HardNegativeSet(demo_tables, out, model, K, "first", seed=0, column="top_neg_ids")
    first = read_table(out, "mined").to_pylist()[0]
    assert [r.id for r in ds.example(0, 0).negatives] == first["top_neg_ids"][:K]


def test_refuses_other_model_other_tables_unknown_ids_and_unfinished(
    mined, demo_tables, tmp_path, tmp_path_factory
):
    model, out = mined
    other_model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2.5-vl")
    with pytest.raises(UmarvelError, match="mined with another model"):
        HardNegativeSet(demo_tables, out, other_model, K, "first", seed=0)
    other_tables = tmp_path / "tables"
    shutil.copytree(demo_tables, other_tables)
    m = json.loads((other_tables / "manifest.json").read_text())
    m["created"] = "another time"
    (other_tables / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UmarvelError, match="mined from other tables"):
        HardNegativeSet(other_tables, out, model, K, "first", seed=0)
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    rows = read_table(bad, "mined")
    negs = rows["neg_ids"].to_pylist()
    negs[0] = ["9:999999"]
    rows = rows.set_column(
        rows.schema.get_field_index("neg_ids"), "neg_ids", pa.array(negs, pa.list_(pa.string()))
    )
    with ShardWriter(bad, "mined", TABLES["mined"]) as w:
        w.write_batch(rows)
    with pytest.raises(UmarvelError, match="'9:999999' is not in the candidates table"):
        HardNegativeSet(demo_tables, bad, model, K, "first", seed=0)
    (bad / "manifest.json").unlink()
    with pytest.raises(UmarvelError, match="no manifest.json"):
        HardNegativeSet(demo_tables, bad, model, K, "first", seed=0)
