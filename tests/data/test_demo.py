"""The demo tree: M-BEIR layout for all 16 tasks, real record shapes, consistent qrels/pools, images."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from umarvel_cli.data.demo import generate_demo
from umarvel_cli.data.demo.build import DEMO_SIZES
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec

SPEC = load_mbeir_spec()
SIZE = DEMO_SIZES["tiny"]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _pool(root: Path, name: str) -> list[dict]:
    return _jsonl(root / SPEC.path("local_pool", pool=name))


def _global(root: Path, name: str) -> list[dict]:
    return _jsonl(root / SPEC.path("global_pool", pool=name))


def _eval_queries(root: Path, stem: str, split: str) -> list[dict]:
    return _jsonl(root / SPEC.path("eval_queries", stem=stem, split=split))


def _id_key(identifier: str) -> tuple[int, int]:
    a, b = identifier.split(":")
    return int(a), int(b)


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_tree_and_other_seed_differs(demo_counts, tmp_path):
    root, counts = demo_counts
    again = generate_demo(tmp_path / "again", seed=0, size="tiny")
    assert again == counts
    first, second = _tree_digest(root), _tree_digest(tmp_path / "again")
    assert len(first) > 1000
    assert first == second

    generate_demo(tmp_path / "other", seed=1, size="tiny")
    other = _tree_digest(tmp_path / "other")
    changed = [k for k in first if other.get(k) != first[k]]
    # texts and images change with the seed; the instruction table does not
    assert SPEC.path("eval_queries", stem="mscoco_task0", split="test") in changed
    assert SPEC.path("local_pool", pool="nights_task4") in changed
    assert "pairs/nli.csv" in changed
    assert SPEC.path("instructions") not in changed


# --- layout ---------------------------------------------------------------------------------------


def test_layout_has_exactly_the_spec_files_for_all_16_tasks(demo_root):
    assert len(SPEC.tasks) == 16
    expected = {SPEC.path("instructions")}
    for dataset in dict.fromkeys(t.dataset for t in SPEC.tasks):
        expected.add(SPEC.path("train_queries", dataset=dataset))
        expected.add(SPEC.path("train_qrels", dataset=dataset))
    for task in SPEC.tasks:
        for split in ("val", "test"):
            expected.add(SPEC.path("eval_queries", stem=task.stem, split=split))
            expected.add(SPEC.path("eval_qrels", stem=task.stem, split=split))
            expected.add(SPEC.path("local_pool", pool=task.pool(split)))
    for name in SPEC.global_pools:
        expected.add(SPEC.path("global_pool", pool=name))
    written = {
        str(p.relative_to(demo_root))
        for top in ("query", "cand_pool", "qrels", "instructions")
        for p in (demo_root / top).rglob("*")
        if p.is_file()
    }
    assert written == expected
    # MSCOCO's split-specific pools (P9) exist next to the per-task ones
    assert (demo_root / SPEC.path("local_pool", pool="mscoco_task0_val")).is_file()
    assert (demo_root / SPEC.path("local_pool", pool="mscoco_task3_test")).is_file()
    assert (demo_root / "README.txt").read_text().startswith("umarvel demo data (seed 0, size tiny)")


def test_counts_match_the_requested_size(demo_counts):
    _, counts = demo_counts
    for split in ("train", "val", "test"):
        assert counts["queries"][split] == {t.stem: SIZE.queries(split) for t in SPEC.tasks}
    for dataset, n in counts["train_files"].items():
        assert n == SIZE.train * sum(1 for t in SPEC.tasks if t.dataset == dataset)
    assert counts["instructions"] == 16
    assert counts["pairs"] == {"nli": SIZE.nli, "caption": SIZE.captions}
    for name, n in counts["pools"].items():
        if not name.startswith("union"):
            assert 12 <= n <= 90, (name, n)  # tiny pools stay tiny


# --- records --------------------------------------------------------------------------------------


CAND_KEYS = ["txt", "img_path", "modality", "did", "src_content"]
QUERY_KEYS = [
    "qid",
    "query_txt",
    "query_img_path",
    "query_modality",
    "query_src_content",
    "pos_cand_list",
    "neg_cand_list",
    "task_id",
]


def _check_modality(modality: str, txt, img) -> None:
    assert (txt is not None) == ("text" in modality.split(","))
    assert (img is not None) == ("image" in modality.split(","))
    if txt is not None:
        assert isinstance(txt, str) and txt.strip()
    if img is not None:
        assert img.startswith(SPEC.files["images_dir"] + "/") and ".." not in img


def _check_src(src) -> None:
    assert src is None or isinstance(json.loads(src), dict)


@pytest.mark.parametrize("stem", [t.stem for t in SPEC.tasks])
def test_records_have_the_real_shapes(demo_root, stem):
    task = SPEC.task(stem)
    for split in ("val", "test"):
        queries = _eval_queries(demo_root, stem, split)
        assert len(queries) == SIZE.queries(split)
        for q in queries:
            assert list(q) == QUERY_KEYS
            assert q["task_id"] == task.task_id
            assert q["query_modality"] == task.query_modality
            assert q["qid"].split(":")[0] == str(task.dataset_id)
            _check_modality(q["query_modality"], q["query_txt"], q["query_img_path"])
            _check_src(q["query_src_content"])
            assert q["pos_cand_list"] and all(isinstance(d, str) for d in q["pos_cand_list"])
            assert isinstance(q["neg_cand_list"], list)
        for c in _pool(demo_root, task.pool(split)):
            assert list(c) == CAND_KEYS
            assert c["modality"] == task.cand_modality
            assert c["did"].split(":")[0] == str(task.dataset_id)
            _check_modality(c["modality"], c["txt"], c["img_path"])
            _check_src(c["src_content"])


def test_train_files_hold_all_tasks_of_their_dataset(demo_root):
    for dataset in dict.fromkeys(t.dataset for t in SPEC.tasks):
        rows = _jsonl(demo_root / SPEC.path("train_queries", dataset=dataset))
        tasks = {t.task_id: t for t in SPEC.tasks if t.dataset == dataset}
        assert Counter(r["task_id"] for r in rows) == {tid: SIZE.train for tid in tasks}
        for r in rows:
            assert list(r) == QUERY_KEYS
            assert r["query_modality"] == tasks[r["task_id"]].query_modality
        assert len({r["qid"] for r in rows}) == len(rows)


def test_some_records_have_nulls_source_content_and_several_positives(demo_root):
    coco_i2t = _eval_queries(demo_root, "mscoco_task3", "test")
    assert all(q["query_txt"] is None for q in coco_i2t)
    assert min(len(q["pos_cand_list"]) for q in coco_i2t) >= 4  # several captions per image
    assert max(len(q["pos_cand_list"]) for q in coco_i2t) >= 5
    infoseek = _eval_queries(demo_root, "infoseek_task6", "test")
    src = json.loads(infoseek[0]["query_src_content"])
    assert set(src) == {"answer", "answer_eval", "entity_id", "question_type"}
    wiki = _pool(demo_root, "oven_task6")
    assert all(set(json.loads(c["src_content"])) == {"wikidata_id", "wikipedia_title"} for c in wiki)
    fashion = _eval_queries(demo_root, "fashion200k_task0", "test")
    assert any(len(q["pos_cand_list"]) > 1 for q in fashion)


# --- qrels and pools ------------------------------------------------------------------------------


def _qrels(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text().splitlines()]


def test_qrels_are_five_columns_and_match_the_positive_lists(demo_root):
    for task in SPEC.tasks:
        for split in ("val", "test"):
            rows = _qrels(demo_root / SPEC.path("eval_qrels", stem=task.stem, split=split))
            assert all(
                len(r) == 5 and r[1] == "0" and r[3] == "1" and r[4] == str(task.task_id) for r in rows
            )
            from_queries = [
                (q["qid"], d) for q in _eval_queries(demo_root, task.stem, split) for d in q["pos_cand_list"]
            ]
            assert [(r[0], r[2]) for r in rows] == from_queries


def test_positives_are_in_the_local_pool_except_the_cross_dataset_ones(demo_counts):
    root, counts = demo_counts
    union = {split: {c["did"] for c in _global(root, f"union_{split}")} for split in ("val", "test")}
    for split in ("val", "test"):
        for task in SPEC.tasks:
            pool = {c["did"] for c in _pool(root, task.pool(split))}
            cross = 0
            for q in _eval_queries(root, task.stem, split):
                for did in q["pos_cand_list"]:
                    if did.split(":")[0] == str(task.dataset_id):
                        assert did in pool, (task.stem, split, q["qid"], did)
                    else:
                        cross += 1
                        assert did not in pool and did in union[split]
            assert cross == counts["cross_positives"][split].get(task.stem, 0)
    # the deliberate cross-dataset positives exist, and only between OVEN and InfoSeek
    total = sum(n for split in counts["cross_positives"].values() for n in split.values())
    assert total > 0
    crossing = {stem for split in counts["cross_positives"].values() for stem, n in split.items() if n}
    assert {SPEC.task(s).dataset for s in crossing} <= {"oven", "infoseek"}


def test_train_positives_and_negatives_are_in_union_train(demo_root):
    union_train = {c["did"] for c in _global(demo_root, "union_train")}
    n_neg = 0
    for dataset in dict.fromkeys(t.dataset for t in SPEC.tasks):
        for q in _jsonl(demo_root / SPEC.path("train_queries", dataset=dataset)):
            assert set(q["pos_cand_list"]) <= union_train
            assert set(q["neg_cand_list"]) <= union_train
            assert not set(q["neg_cand_list"]) & set(q["pos_cand_list"])
            n_neg += len(q["neg_cand_list"])
    assert n_neg > 0  # some datasets ship hard negatives


def test_global_pools_are_built_like_the_real_ones(demo_root):
    local_test = {}
    for task in SPEC.tasks:
        for c in _pool(demo_root, task.pool("test")):
            local_test[c["did"]] = c
    union_test = _global(demo_root, "union_test")
    # union_test = the concatenation of the local test pools, sorted by (dataset_id, n), no MSCOCO val pool
    assert [c["did"] for c in union_test] == sorted(local_test, key=_id_key)
    assert all(c == local_test[c["did"]] for c in union_test)
    mscoco_val = {c["did"] for c in _pool(demo_root, "mscoco_task0_val")}
    assert not mscoco_val & set(local_test)
    # union_val is trimmed to the val positives and negatives
    wanted = {
        d
        for task in SPEC.tasks
        for q in _eval_queries(demo_root, task.stem, "val")
        for d in q["pos_cand_list"] + q["neg_cand_list"]
    }
    assert {c["did"] for c in _global(demo_root, "union_val")} == wanted
    # train candidates are their own pool
    union_train = {c["did"] for c in _global(demo_root, "union_train")}
    assert not union_train & set(local_test)
    for pool in (union_test, _global(demo_root, "union_train")):
        assert len({c["did"] for c in pool}) == len(pool)


# --- images, instructions, corpora ----------------------------------------------------------------


def test_every_referenced_image_exists_and_opens(demo_counts):
    root, counts = demo_counts
    paths = set()
    for path in (root / "query").rglob("*.jsonl"):
        paths |= {r["query_img_path"] for r in _jsonl(path) if r["query_img_path"]}
    for path in (root / "cand_pool" / "local").glob("*.jsonl"):
        paths |= {r["img_path"] for r in _jsonl(path) if r["img_path"]}
    on_disk = {str(p.relative_to(root)) for p in (root / SPEC.files["images_dir"]).rglob("*.png")}
    assert paths <= on_disk
    assert len(on_disk) == counts["images"]
    for rel in sorted(paths)[:: max(1, len(paths) // 200)]:
        with Image.open(root / rel) as img:
            img.load()
            assert img.size == (56, 56) and img.mode == "RGB"


def test_instructions_tsv_has_a_header_and_four_prompts_per_task(demo_root):
    rows = list(csv.reader((demo_root / SPEC.path("instructions")).open(), delimiter="\t"))
    assert rows[0][:4] == ["query_modality", "cand_modality", "dataset_name", "dataset_id"]
    body = rows[1:]
    assert len(body) == 16 and all(len(r) == 8 and all(r) for r in body)
    keys = {(int(r[3]), r[0], r[1]) for r in body}
    assert keys == {(t.dataset_id, t.query_modality, t.cand_modality) for t in SPEC.tasks}
    by_key = {(int(r[3]), r[0], r[1]): r for r in body}
    assert (
        by_key[(0, "text", "image")][4] == "Identify the news-related image in line with the described event."
    )
    assert by_key[(0, "text", "image")][2] == "VisualNews"


def test_pair_corpora_are_in_the_nli_and_caption_formats(demo_root):
    rows = list(csv.reader((demo_root / "pairs" / "nli.csv").open()))
    assert rows[0] == ["sent0", "sent1", "hard_neg"]
    assert len(rows) - 1 == SIZE.nli
    assert all(len(r) == 3 and r[1] != r[2] for r in rows[1:])
    caps = _jsonl(demo_root / "pairs" / "captions.jsonl")
    assert len(caps) == SIZE.captions
    for rec in caps:
        assert list(rec) == ["image", "caption"]
        assert (demo_root / "pairs" / rec["image"]).is_file()
