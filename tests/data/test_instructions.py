"""Deterministic evaluation instructions keyed by (dataset id, query modality, candidate modality)."""

from __future__ import annotations

import pytest

from umarvel_cli.data.instructions import InstructionTable, dataset_id_from_qid, stable_index
from umarvel_cli.errors import UmarvelError

TABLE = InstructionTable(
    {(9, "text", "image"): ["first prompt", "second", "third"], (3, "image", "text"): ["only"]}
)


def test_first_mode_takes_the_first_prompt():
    assert TABLE.choose("9:17", "text", "image") == "first prompt"
    assert TABLE.choose("3:1", "image", "text", mode="seeded") == "only"


def test_seeded_mode_is_a_stable_function_of_the_qid():
    picks = [TABLE.choose(f"9:{i}", "text", "image", mode="seeded") for i in range(60)]
    assert picks == [TABLE.choose(f"9:{i}", "text", "image", mode="seeded") for i in range(60)]
    assert set(picks) == {"first prompt", "second", "third"}
    assert stable_index("9:5", 3) == stable_index("9:5", 3) and 0 <= stable_index("9:5", 3) < 3
    assert stable_index("9:5", 1000, seed=1) != stable_index("9:5", 1000, seed=2)


def test_dataset_id_comes_from_the_qid_unless_given():
    assert dataset_id_from_qid("9:12") == 9 and dataset_id_from_qid("abc") is None
    assert TABLE.choose("x", "image", "text", dataset_id=3) == "only"
    with pytest.raises(UmarvelError, match="has no dataset id"):
        TABLE.choose("x", "text", "image")


def test_missing_key_is_an_error_and_none_mode_or_empty_table_gives_none():
    with pytest.raises(UmarvelError, match=r"no instruction for dataset 9, image -> image"):
        TABLE.choose("9:1", "image", "image")
    assert TABLE.choose("9:1", "text", "image", mode="none") is None
    assert InstructionTable({}).choose("9:1", "text", "image") is None
    with pytest.raises(UmarvelError, match="unknown instruction mode"):
        TABLE.choose("9:1", "text", "image", mode="random")
