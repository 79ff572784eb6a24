"""Reading marks and counting marked false negatives among mined negatives."""

from __future__ import annotations

import pytest

from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining.near_duplicates import count_marked, read_marks


def test_count_marked_on_hand_made_groups(tmp_path):
    path = tmp_path / "marks.tsv"
    path.write_text(
        "did\tgroup\np1\titem:a\nn1\titem:a\nn2\titem:b\np2\titem:b\np2\tentity:x\nn3\tentity:x\n"
    )
    marks = read_marks(path)
    assert marks["p2"] == frozenset({"item:b", "entity:x"})
    got = count_marked([["p1"], ["p2"], ["p9"]], [["n1", "n2", "n4"], ["n3", "n1"], ["n1"]], marks)
    assert (got.negatives, got.marked) == (6, 2)  # n1 for p1, n3 for p2 (entity); n2 is nobody's twin here
    assert got.share == pytest.approx(2 / 6)


def test_bad_marks_file(tmp_path):
    path = tmp_path / "marks.tsv"
    path.write_text("id,group\n")
    with pytest.raises(UmarvelError, match="not a near-duplicate marks file"):
        read_marks(path)
    path.write_text("did\tgroup\nonly-one-field\n")
    with pytest.raises(UmarvelError, match=r"marks.tsv:2: expected two tab-separated fields"):
        read_marks(path)
