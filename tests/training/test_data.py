"""Training examples from the demo tables: seeded picks, false-negative keys, ids, images."""

from __future__ import annotations

import pytest

from umarvel_cli.artifacts import read_table
from umarvel_cli.training.data import MbeirSet, PairsSet


@pytest.fixture(scope="module")
def mbeir_set(demo_tables):
    return MbeirSet(demo_tables, hard_negatives=1, instruction="random", seed=7)


def test_mbeir_examples_carry_instruction_positive_and_keys(mbeir_set, demo_tables):
    train = [q for q in read_table(demo_tables, "queries").to_pylist() if q["split"] == "train"]
    assert len(mbeir_set) == len(train) and mbeir_set.describe()["tasks"] == 16
    for i in range(0, len(train), 37):
        ex = mbeir_set.example(i, epoch=0)
        row = train[i]
        assert ex.query.id == row["qid"] and ex.query.instruction
        assert ex.pos_key in row["pos"] and ex.query_pos_keys == row["pos"]
        assert ex.positive.id == ex.pos_key
        assert ex.neg_keys == row["neg"][:1] and [n.id for n in ex.negatives] == ex.neg_keys
        if ex.query.image is not None:
            assert ex.query.image.is_file()
        if ex.positive.image is not None:
            assert ex.positive.image.is_file()


def test_mbeir_picks_are_seeded_per_epoch(mbeir_set, demo_tables):
    again = MbeirSet(demo_tables, hard_negatives=1, instruction="random", seed=7)
    picks = [(e.query.instruction, e.pos_key) for e in (mbeir_set.example(i, 0) for i in range(40))]
    assert picks == [(e.query.instruction, e.pos_key) for e in (again.example(i, 0) for i in range(40))]
    later = [(e.query.instruction, e.pos_key) for e in (mbeir_set.example(i, 1) for i in range(40))]
    assert picks != later  # a new epoch draws new instruction variants
    first = MbeirSet(demo_tables, hard_negatives=0, instruction="first", seed=7)
    assert first.example(3, 0).query.instruction == first.example(3, 5).query.instruction
    assert first.example(3, 0).negatives == []


def test_task_groups_follow_dataset_and_task(mbeir_set, demo_tables):
    train = [q for q in read_table(demo_tables, "queries").to_pylist() if q["split"] == "train"]
    by_group: dict[int, set] = {}
    for g, row in zip(mbeir_set.groups.tolist(), train, strict=True):
        by_group.setdefault(g, set()).add((row["dataset_id"], row["task_id"]))
    assert all(len(v) == 1 for v in by_group.values()) and len(by_group) == 16


def test_caption_pairs_are_text_to_image(demo_pairs):
    pairs = PairsSet(demo_pairs["caption"], "caption", hard_negatives=0)
    ex = pairs.example(0, 0)
    assert ex.query.resolved_modality() == "text" and ex.positive.resolved_modality() == "image"
    assert ex.positive.image.is_file() and ex.pos_key.startswith("i:")
    nli = PairsSet(demo_pairs["nli"], "nli", hard_negatives=1).example(0, 0)
    assert (
        len(nli.negatives) == 1 and nli.neg_keys[0].startswith("t:") and nli.query_pos_keys == [nli.pos_key]
    )
