"""Round trip: demo data → `prepare mbeir` → tables with exactly the counts the generator reported."""

from __future__ import annotations

import json
from collections import Counter

from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.shards import read_table
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec

SPEC = load_mbeir_spec()
STEM = {(t.dataset_id, t.task_id): t.stem for t in SPEC.tasks}


def test_prepared_tables_have_the_generated_counts(demo_counts, demo_tables):
    root, counts = demo_counts
    manifest = read_manifest(demo_tables)
    assert manifest is not None and manifest.stage == "prepare-mbeir"
    assert manifest.counts["rejected"] == 0
    assert manifest.extra["images_root"] == str(root.resolve())

    queries = read_table(demo_tables, "queries", columns=["split", "dataset_id", "task_id"]).to_pylist()
    per_task = Counter((q["split"], STEM[(q["dataset_id"], q["task_id"])]) for q in queries)
    expected = {
        (split, stem): n for split, by_stem in counts["queries"].items() for stem, n in by_stem.items()
    }
    assert dict(per_task) == expected

    qrels = Counter(r["split"] for r in read_table(demo_tables, "qrels", columns=["split"]).to_pylist())
    assert dict(qrels) == {split: sum(by_stem.values()) for split, by_stem in counts["qrels"].items()}

    pools = Counter(r["pool"] for r in read_table(demo_tables, "pools", columns=["pool"]).to_pylist())
    assert dict(pools) == counts["pools"]
    assert manifest.counts["candidates"] == counts["candidates"]
    assert manifest.counts["instructions"] == counts["instructions"] == 16


def test_the_validation_report_sees_only_the_deliberate_cross_dataset_positives(demo_counts, demo_tables):
    _, counts = demo_counts
    report = read_manifest(demo_tables).extra["report"]
    assert report["images_checked"] and not any(report["missing_images"].values())
    for key, row in report["tasks"].items():
        split, stem = key.split("/")
        assert row["missing_positive"] == 0 and row["no_positive"] == 0, key
        if split != "train":  # train positives are checked in union_train, which holds both datasets
            assert row["cross_dataset_positive"] == counts["cross_positives"][split].get(stem, 0), key


def test_a_record_survives_the_round_trip_unchanged(demo_root, demo_tables):
    line = (
        (demo_root / SPEC.path("eval_queries", stem="infoseek_task6", split="test"))
        .read_text()
        .splitlines()[0]
    )
    source = json.loads(line)
    rows = read_table(demo_tables, "queries").to_pylist()
    row = next(r for r in rows if r["split"] == "test" and r["qid"] == source["qid"])
    assert row["text"] == source["query_txt"]
    assert row["image"] == source["query_img_path"]
    assert row["modality"] == source["query_modality"] == "image,text"
    assert row["pos"] == source["pos_cand_list"]
    assert row["src_content"] == source["query_src_content"]
    assert (demo_root / row["image"]).is_file()
