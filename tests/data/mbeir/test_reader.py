from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.data.fixtures.tiny_mbeir import build_tiny_mbeir, write_images
from umarvel_cli.artifacts import shards
from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.shards import list_shards, read_table
from umarvel_cli.data.mbeir.reader import STAGE, prepare_mbeir
from umarvel_cli.errors import SchemaError, UmarvelError

TABLES = ("queries", "candidates", "pools", "qrels", "instructions")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return build_tiny_mbeir(tmp_path_factory.mktemp("mbeir") / "M-BEIR")


@pytest.fixture(scope="session")
def prepared(tiny_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "tables"
    prepare_mbeir(tiny_root, out, rows_per_shard=7)
    return out


def _rows(out: Path, table: str) -> list[dict]:
    return read_table(out, table).to_pylist()


def test_exact_table_counts(prepared):
    manifest = read_manifest(prepared)
    assert manifest.stage == STAGE
    # 16 tasks x 2 queries x (val + test) + 16 train queries.
    # qrels: one per positive; oven_task6 has 2 per query (4 queries), one nights val query has none.
    # candidates: 14 shared local pools x 3 + 4 MSCOCO split pools x 3 + 16 train candidates.
    # pools: 54 local rows + union_test 48 + union_val 16 + union_train 16.
    expected = {"queries": 80, "qrels": 83, "candidates": 70, "pools": 134, "instructions": 16, "rejected": 0}
    assert manifest.counts == expected
    for table in TABLES:
        assert len(_rows(prepared, table)) == expected[table]
    candidates = _rows(prepared, "candidates")
    assert len({c["did"] for c in candidates}) == 70  # the same did from several pools is stored once


def test_images_root_is_absolute_m_beir_root(prepared, tiny_root):
    root = read_manifest(prepared).extra["images_root"]
    assert Path(root).is_absolute()
    assert root == str(tiny_root.resolve())


def test_splits_and_tasks_per_split(prepared):
    queries = _rows(prepared, "queries")
    by_split = {}
    for q in queries:
        by_split[q["split"]] = by_split.get(q["split"], 0) + 1
    assert by_split == {"train": 16, "val": 32, "test": 32}
    report = read_manifest(prepared).extra["report"]["tasks"]
    assert report["test/oven_task6"]["queries"] == 2 and report["test/oven_task6"]["qrels"] == 4
    assert report["train/webqa_task2"]["queries"] == 1
    first = queries[0]
    assert first["split"] == "train" and first["qid"] == "0:7000" and first["dataset_id"] == 0
    assert first["task_id"] == 0 and first["modality"] == "text" and first["pos"] == ["0:5000"]


def test_mscoco_split_specific_pools(prepared):
    pools = _rows(prepared, "pools")
    names = {}
    for row in pools:
        names.setdefault(row["pool"], []).append(row["did"])
    for name in ("mscoco_task0_val", "mscoco_task0_test", "mscoco_task3_val", "mscoco_task3_test"):
        assert len(names[name]) == 3
    assert "mscoco_task0" not in names and "mscoco_task3" not in names
    assert names["mscoco_task0_val"] == ["9:150", "9:151", "9:152"]
    assert names["mscoco_task0_test"] == ["9:100", "9:101", "9:102"]
    report = read_manifest(prepared).extra["report"]["tasks"]
    assert report["val/mscoco_task0"]["checked_pool"] == "mscoco_task0_val"
    assert report["test/mscoco_task3"]["checked_pool"] == "mscoco_task3_test"
    assert report["val/mscoco_task0"]["missing_positive"] == 0
    # The global test pool is the concatenation of the 16 local test pools: no MSCOCO val items.
    assert "9:150" not in names["union_test"] and "9:100" in names["union_test"]
    assert len(names["union_test"]) == 48


def test_five_column_qrels(prepared):
    qrels = _rows(prepared, "qrels")
    oven = [r for r in qrels if r["qid"] == "5:1000" and r["split"] == "test"]
    assert oven == [
        {"qid": "5:1000", "did": "5:1000", "relevance": 1, "task_id": 6, "split": "test"},
        {"qid": "5:1000", "did": "6:1101", "relevance": 1, "task_id": 6, "split": "test"},
    ]
    assert {r["split"] for r in qrels} == {"train", "val", "test"}


def test_instructions_by_position_header_skipped(prepared):
    rows = _rows(prepared, "instructions")
    assert len(rows) == 16
    assert rows[0] == {
        "dataset_id": 0,
        "dataset_name": "VisualNews",
        "query_modality": "text",
        "cand_modality": "image",
        "prompts": [f"visualnews_task0 prompt {k}" for k in range(1, 5)],
    }
    webqa1 = next(r for r in rows if r["prompts"][0].startswith("webqa_task1"))
    assert webqa1["prompts"] == ["webqa_task1 prompt 1", "webqa_task1 prompt 2", "webqa_task1 prompt 3"]
    assert webqa1["query_modality"] == "text" and webqa1["cand_modality"] == "text"


def test_nulls_are_missing(prepared):
    candidates = {c["did"]: c for c in _rows(prepared, "candidates")}
    # visualnews_task0 image candidates: txt is null, "" and "null" in the three rows.
    for did in ("0:0", "0:1", "0:2"):
        assert candidates[did]["text"] is None
        assert candidates[did]["image"] == f"mbeir_images/cands/0_{did[2:]}.jpg"
        assert candidates[did]["modality"] == "image"
    # webqa_task1 text candidates: img_path is "", "null" and null.
    for did in ("2:300", "2:301", "2:302"):
        assert candidates[did]["image"] is None and candidates[did]["text"] == f"Text of candidate {did}."
    assert candidates["0:1"]["src_content"] == json.dumps({"n": "0:1"})
    assert candidates["0:0"]["src_content"] is None
    queries = {(q["split"], q["qid"]): q for q in _rows(prepared, "queries")}
    image_query = queries[("test", "0:600")]  # visualnews_task3: image -> text, query_txt null
    assert image_query["modality"] == "image" and image_query["text"] is None
    assert image_query["image"] == "mbeir_images/queries/0_600.jpg"
    assert queries[("test", "0:601")]["text"] is None  # query_txt ""
    composed = queries[("val", "5:1050")]
    assert composed["modality"] == "image,text" and composed["text"] == "Query 5:1050 text"


def test_positive_validation_counts(prepared):
    report = read_manifest(prepared).extra["report"]
    tasks = report["tasks"]
    # OVEN lists InfoSeek positives that are not in the OVEN pool: reported apart as cross-dataset.
    assert tasks["test/oven_task6"]["cross_dataset_positive"] == 2
    assert tasks["val/oven_task6"]["cross_dataset_positive"] == 2
    assert tasks["test/oven_task6"]["missing_positive"] == 0
    assert tasks["test/cirr_task7"]["missing_positive"] == 1
    # The InfoSeek positives of OVEN queries are in the InfoSeek pool; CIRR's missing one is nowhere.
    assert tasks["test/oven_task6"]["positive_in_no_pool"] == 0
    assert tasks["test/cirr_task7"]["positive_in_no_pool"] == 1
    assert sum(t["positive_in_no_pool"] for t in tasks.values()) == 1
    assert tasks["val/nights_task4"]["no_positive"] == 1
    assert tasks["train/cirr_task7"]["checked_pool"] == "union_train"
    total_missing = sum(t["missing_positive"] for t in tasks.values())
    total_cross = sum(t["cross_dataset_positive"] for t in tasks.values())
    assert (total_missing, total_cross) == (1, 4)
    assert report["qrels_unknown_qid"] == {}
    assert report["images_checked"] is False


def test_second_run_is_up_to_date_and_force_redoes(tiny_root, tmp_path, capsys):
    out = tmp_path / "t"
    first = prepare_mbeir(tiny_root, out, splits="val,test", rows_per_shard=50)
    capsys.readouterr()
    again = prepare_mbeir(tiny_root, out, splits=("test", "val"), rows_per_shard=50)
    assert "up to date" in capsys.readouterr().err
    assert again.created == first.created
    forced = prepare_mbeir(tiny_root, out, splits="val,test", rows_per_shard=50, force=True)
    assert "up to date" not in capsys.readouterr().err
    assert forced.counts == first.counts
    assert first.counts["queries"] == 64
    assert "union_train" not in first.extra["report"]["pools"]


def test_missing_global_pool_is_a_note(tiny_root, tmp_path):
    root = shutil.copytree(tiny_root, tmp_path / "M-BEIR")
    (root / "cand_pool/global/mbeir_union_train_cand_pool.jsonl").unlink()
    manifest = prepare_mbeir(root, tmp_path / "out", splits="train")
    notes = manifest.extra["report"]["notes"]
    assert any("union_train not found" in n for n in notes)
    assert any("train: positives not checked" in n for n in notes)
    assert manifest.counts["candidates"] == 0 and manifest.counts["queries"] == 16


def test_missing_required_file_names_it(tiny_root, tmp_path):
    root = shutil.copytree(tiny_root, tmp_path / "M-BEIR")
    (root / "cand_pool/local/mbeir_mscoco_task3_val_cand_pool.jsonl").unlink()
    with pytest.raises(UmarvelError, match="mbeir_mscoco_task3_val_cand_pool.jsonl"):
        prepare_mbeir(root, tmp_path / "out", splits="val", tasks="all")
    with pytest.raises(UmarvelError, match="mbeir_mscoco_task3_val_cand_pool.jsonl"):
        prepare_mbeir(root, tmp_path / "out", splits="val", tasks="mscoco_task3")
    # test alone does not need the val pool
    assert prepare_mbeir(root, tmp_path / "out2", splits="test").counts["queries"] == 32


def _all_tables(out: Path) -> dict[str, list[dict]]:
    return {t: _rows(out, t) for t in TABLES}


@pytest.mark.parametrize("kill_after", [1, 12, 36, 45])  # instructions, pools, queries, qrels phases
def test_killed_prepare_resumes_to_identical_tables(tiny_root, prepared, tmp_path, monkeypatch, kill_after):
    out = tmp_path / "t"
    real_write = shards._atomic_write_table
    written = []

    def write_then_die(data, path, *args):
        real_write(data, path, *args)
        written.append(path)
        if len(written) == kill_after:
            raise KeyboardInterrupt  # killed between two shards

    monkeypatch.setattr(shards, "_atomic_write_table", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare_mbeir(tiny_root, out, rows_per_shard=7)
    monkeypatch.setattr(shards, "_atomic_write_table", real_write)
    assert read_manifest(out) is None
    assert (out / "_progress.json").is_file()
    kept = {t: len(list_shards(out, t)) for t in TABLES}
    assert sum(kept.values()) == kill_after

    resumed = prepare_mbeir(tiny_root, out, rows_per_shard=7)
    assert resumed.counts == read_manifest(prepared).counts
    assert _all_tables(out) == _all_tables(prepared)
    for table in TABLES:
        names = [p.name for p in list_shards(out, table)]
        assert names == [p.name for p in list_shards(prepared, table)]
    assert not (out / "_progress.json").exists()


def test_image_check_counts_missing_files(tiny_root, tmp_path):
    root = shutil.copytree(tiny_root, tmp_path / "M-BEIR")
    left_out = write_images(root, skip=3)
    manifest = prepare_mbeir(root, tmp_path / "out", splits="test")
    report = manifest.extra["report"]
    assert report["images_checked"] is True
    assert sum(report["missing_images"].values()) == left_out == 3
    assert len(report["missing_image_examples"]) == 3


def test_schema_version_checked_when_reading(prepared, tmp_path):
    out = shutil.copytree(prepared, tmp_path / "copy")
    shard = list_shards(out, "qrels")[0]
    table = pq.read_table(shard)
    meta = dict(table.schema.metadata)
    meta[b"umarvel.schema_version"] = b"999"
    pq.write_table(table.replace_schema_metadata(meta), shard)
    with pytest.raises(SchemaError, match="schema version 999"):
        read_table(out, "qrels")


def test_arrow_blocks_and_line_parser_give_identical_tables(tiny_root, prepared, tmp_path, monkeypatch):
    """The pyarrow block path is an acceleration: the per-line path must produce the same tables."""
    import umarvel_cli.data.mbeir.pool_block as pool_block

    real = pool_block.parse_block_arrow
    used = []

    def spy(lines, use_threads=True):
        table = real(lines, use_threads)
        used.append(table is not None)
        return table

    monkeypatch.setattr(pool_block, "parse_block_arrow", spy)
    fast_out = prepare_mbeir(tiny_root, tmp_path / "fast", rows_per_shard=7)
    assert used and all(used)  # every pool block of the tiny tree took the fast path
    monkeypatch.setattr(pool_block, "parse_block_arrow", lambda lines, use_threads=True: None)
    slow_out = prepare_mbeir(tiny_root, tmp_path / "slow", rows_per_shard=7)
    assert fast_out.counts == slow_out.counts == read_manifest(prepared).counts
    assert _all_tables(tmp_path / "fast") == _all_tables(tmp_path / "slow") == _all_tables(prepared)
