"""Issue 15's bad inputs for `umarvel mine` and `umarvel train --stage hardneg`, through the CLI.

Each case must end in exit status 2, exactly one line on stderr naming what is wrong, and nothing
written: neither `--out` nor the `--embeddings` folder exists afterwards. (A model other than the
one that mined, and a missing or unfinished `--negatives`, are in tests/commands/test_train.py.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from tests.commands.safety_data import cli, error_line
from umarvel_cli.artifacts import TABLES, ShardWriter, read_table


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _unfinished(src: Path, dst: Path) -> Path:
    """A copy as a killed stage leaves it: no manifest, a progress marker."""
    _copy(src, dst)
    (dst / "manifest.json").unlink()
    (dst / "_progress.json").write_text('{"key": "x"}\n')
    return dst


def _interrupted_model(model: Path, tmp: Path) -> Path:
    run = tmp / "train-out"
    shutil.copytree(model, run / "model")
    (run / "_progress.json").write_text("{}")
    return run / "model"


def _mismatched_model(model: Path, tmp: Path) -> Path:
    m = _copy(model, tmp / "model-copy")
    (m / "umarvel.json").write_text('{"family": "qwen2-vl", "pooling": "sideways"}')
    return m


def _unknown_ids(mined: Path, tmp: Path) -> Path:
    bad = _copy(mined, tmp / "bad-mined")
    rows = read_table(bad, "mined")
    negs = rows["neg_ids"].to_pylist()
    negs[0] = ["9:999999"]
    col = rows.schema.get_field_index("neg_ids")
    rows = rows.set_column(col, "neg_ids", pa.array(negs, pa.list_(pa.string())))
    with ShardWriter(bad, "mined", TABLES["mined"]) as w:
        w.write_batch(rows)
    return bad


def _without_val_pool(tables: Path, tmp: Path) -> Path:
    """Tables as `prepare mbeir --splits train,test` leaves them: no union_val pool."""
    dst = _copy(tables, tmp / "tables")
    pools = read_table(dst, "pools")
    keep = pa.array([p != "union_val" for p in pools["pool"].to_pylist()])
    with ShardWriter(dst, "pools", TABLES["pools"]) as w:
        w.write_batch(pools.filter(keep))
    return dst


def _other_tables(tables: Path, tmp: Path) -> Path:
    other = _copy(tables, tmp / "tables")
    m = json.loads((other / "manifest.json").read_text())
    m["created"] = "another time"
    (other / "manifest.json").write_text(json.dumps(m))
    return other


Build = Callable[[dict, Path], list]


def mine(*extra: str, model=lambda b, t: b["model"], data=lambda b, t: b["tables"]) -> Build:
    def build(b: dict, tmp: Path) -> list:
        return ["mine", "--model", model(b, tmp), "--data", data(b, tmp), "--out", tmp / "out",
                "--embeddings", tmp / "emb", "--topk", "20", "--range", "1-20", *extra]  # fmt: skip

    return build


def hardneg(negatives=lambda b, t: b["mined"], model=lambda b, t: b["model"], data=lambda b, t: b["tables"]):
    def build(b: dict, tmp: Path) -> list:
        return ["train", "--stage", "hardneg", "--profile", "demo", "--device", "cpu",
                "--model", model(b, tmp), "--data", data(b, tmp), "--negatives", negatives(b, tmp),
                "--out", tmp / "out", "--set", "hard_negatives=3"]  # fmt: skip

    return build


CASES: list[tuple[str, Build, str]] = [
    ("mine: --data interrupted", mine(data=lambda b, t: _unfinished(b["tables"], t / "d")), "no manifest.json"),
    ("mine: model interrupted", mine(model=lambda b, t: _interrupted_model(b["model"], t)), "interrupted"),
    ("mine: umarvel.json mismatch", mine(model=lambda b, t: _mismatched_model(b["model"], t)), "pooling"),
    ("mine: model missing", mine(model=lambda b, t: t / "nope"), "model folder not found"),
    ("mine: pool does not exist", mine("--split", "val", data=lambda b, t: _without_val_pool(b["tables"], t)),
     "pool 'union_val' does not exist"),
    ("mine: empty --range", mine("--range", ""), "not a rank window"),
    ("mine: inverted --range", mine("--range", "9-3"), "inverted"),
    ("mine: --range past --topk", mine("--range", "1-50"), "past --topk"),
    ("mine: ratio 0", mine("--max-score-ratio", "0"), "outside (0, 1]"),
    ("mine: ratio above 1", mine("--max-score-ratio", "1.5"), "outside (0, 1]"),
    ("mine: negative ratio", mine("--max-score-ratio", "-0.5"), "outside (0, 1]"),
    ("mine: ratio not a number", mine("--max-score-ratio", "most"), "not a number"),
    ("mine: k above the window", mine("--range", "3-6", "--num-negatives", "5"), "more than the window"),
    ("hardneg: ids not in the tables", hardneg(negatives=lambda b, t: _unknown_ids(b["mined"], t)), "9:999999"),
    ("hardneg: --negatives interrupted", hardneg(negatives=lambda b, t: _unfinished(b["mined"], t / "m")), "unfinished run"),
    ("hardneg: mined from other tables", hardneg(data=lambda b, t: _other_tables(b["tables"], t)), "other tables"),
]  # fmt: skip


@pytest.fixture(scope="module")
def base(demo_mined, demo_tables) -> dict:
    model, mined = demo_mined
    return {"model": model, "mined": mined, "tables": demo_tables}


@pytest.mark.parametrize(("name", "build", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, build, needle, base, tmp_path):
    line = error_line(cli(*build(base, tmp_path)))
    assert needle in line, line
    assert not (tmp_path / "out").exists() and not (tmp_path / "emb").exists()
