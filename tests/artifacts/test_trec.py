from __future__ import annotations

import pyarrow as pa
import pytest

from umarvel_cli.artifacts import TABLES
from umarvel_cli.artifacts.trec import QrelRow, read_qrels, read_trec_run, write_qrels, write_trec_run
from umarvel_cli.errors import UmarvelError


def test_run_round_trip(tmp_path):
    run = pa.Table.from_pydict(
        {
            "qid": ["9:1", "9:1", "2:7"],
            "did": ["9:10", "9:11", "2:3"],
            "rank": [1, 2, 1],
            "score": [0.5, 0.25, -0.125],
        },
        schema=TABLES["run"],
    )
    path = write_trec_run(tmp_path / "r.trec", run, run_id="mine")
    assert path.read_text().splitlines()[0] == "9:1 Q0 9:10 1 0.5 mine"
    assert read_trec_run(path).to_pylist() == run.to_pylist()


def test_uniir_seven_column_run_and_errors(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text("1:5 Q0 1:9 1 0.91 run_x 0\n\n1:5 Q0 1:8 2 0.5 run_x 0\n")
    assert read_trec_run(p).column("did").to_pylist() == ["1:9", "1:8"]
    p.write_text("1:5 Q0 1:9 one 0.9 r\n")
    with pytest.raises(UmarvelError, match=r"u.txt:1: field 'rank'"):
        read_trec_run(p)
    p.write_text("1:5 Q0 1:9\n")
    with pytest.raises(UmarvelError, match="3 columns"):
        read_trec_run(p)
    with pytest.raises(UmarvelError, match="one word"):
        write_trec_run(tmp_path / "x", [], run_id="two words")
    spaced = pa.Table.from_pydict(
        {"qid": ["a b"], "did": ["d"], "rank": [1], "score": [1.0]}, schema=TABLES["run"]
    )
    with pytest.raises(UmarvelError, match="qid holds whitespace"):
        write_trec_run(tmp_path / "s.trec", spaced)
    assert not (tmp_path / "s.trec").exists() and not (tmp_path / "s.trec.tmp").exists()


def test_float32_scores_round_trip_exactly(tmp_path):
    import numpy as np

    scores = np.random.default_rng(0).standard_normal(50).astype(np.float32)
    run = pa.Table.from_pydict(
        {"qid": ["q"] * 50, "did": [f"d{i}" for i in range(50)], "rank": list(range(1, 51)), "score": scores},
        schema=TABLES["run"],
    )
    back = read_trec_run(write_trec_run(tmp_path / "f.trec", run))
    assert back.column("score").to_numpy().tolist() == scores.tolist()


def test_qrels_four_and_five_columns(tmp_path):
    five = [QrelRow("9:1", "9:10", 1, 0), QrelRow("9:1", "9:11", 1, 0)]
    p5 = write_qrels(tmp_path / "q5.txt", five)
    assert p5.read_text().splitlines()[0] == "9:1 0 9:10 1 0"
    assert read_qrels(p5) == five
    four = [QrelRow("a", "b", 2, None)]
    p4 = write_qrels(tmp_path / "q4.txt", four)
    assert p4.read_text() == "a 0 b 2\n"
    assert read_qrels(p4) == four
    p4.write_text("a 0 b\n")
    with pytest.raises(UmarvelError, match="q4.txt:1: 3 columns"):
        read_qrels(p4)
    with pytest.raises(UmarvelError, match="file not found"):
        read_qrels(tmp_path / "missing")
