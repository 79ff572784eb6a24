from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.data.fixtures.tiny_mbeir import build_tiny_mbeir
from umarvel_cli.app import app
from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.shards import read_table

runner = CliRunner()

VN_POOL = "cand_pool/local/mbeir_visualnews_task0_cand_pool.jsonl"
VN_TEST = "query/test/mbeir_visualnews_task0_test.jsonl"
CIRR_QRELS = "qrels/test/mbeir_cirr_task7_test_qrels.txt"
UNION_TEST = "cand_pool/global/mbeir_union_test_cand_pool.jsonl"
INSTRUCTIONS = "instructions/query_instructions.tsv"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return build_tiny_mbeir(tmp_path_factory.mktemp("pristine") / "M-BEIR")


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    return shutil.copytree(pristine, tmp_path / "M-BEIR")


def _replace_line(path: Path, lineno: int, edit) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def _json_edit(**changes):
    def edit(line: str) -> str:
        rec = json.loads(line)
        for key, value in changes.items():
            if value is _DROP:
                rec.pop(key)
            else:
                rec[key] = value
        return json.dumps(rec)

    return edit


_DROP = object()

BAD_INPUTS = [
    # (id, file, line, edit, field, message fragment)
    ("malformed-json", VN_POOL, 2, lambda line: line[:-3], None, "malformed JSON line"),
    ("missing-did", VN_POOL, 3, _json_edit(did=_DROP), "did", "missing field"),
    ("missing-qid", VN_TEST, 1, _json_edit(qid=_DROP), "qid", "missing field"),
    ("missing-pos", VN_TEST, 2, _json_edit(pos_cand_list=_DROP), "pos_cand_list", "missing field"),
    ("unknown-modality", VN_POOL, 1, _json_edit(modality="video"), "modality", "unknown modality 'video'"),
    (
        "unknown-query-modality",
        VN_TEST,
        1,
        _json_edit(query_modality="text,image"),
        "query_modality",
        "unknown modality",
    ),
    ("unknown-task-id", VN_TEST, 2, _json_edit(task_id=5), "task_id", "unknown task id 5"),
    ("task-of-another-file", VN_TEST, 2, _json_edit(task_id=3), "task_id", "does not belong in this file"),
    ("qrels-4-columns", CIRR_QRELS, 1, lambda line: " ".join(line.split()[:4]), "columns", "has 4 columns"),
    ("qrels-relevance", CIRR_QRELS, 2, lambda line: line.replace(" 1 7", " yes 7"), "relevance", "'yes'"),
    ("qrels-task", CIRR_QRELS, 1, lambda line: line[:-1] + "42", "task_id", "unknown task id 42"),
    (
        "path-traversal",
        VN_POOL,
        2,
        _json_edit(img_path="mbeir_images/../../secret.jpg"),
        "img_path",
        "escapes the images root",
    ),
    (
        "absolute-path",
        VN_TEST,
        1,
        _json_edit(query_modality="image", query_img_path="/etc/passwd"),
        "query_img_path",
        "absolute image path",
    ),
    ("image-missing", VN_POOL, 1, _json_edit(img_path=None), "img_path", "needs an image path"),
    ("conflicting-did", UNION_TEST, 2, _json_edit(txt="other text"), "did", "differs from its row in pool"),
    (
        "bad-instruction",
        INSTRUCTIONS,
        3,
        lambda line: "audio" + line[4:],
        "query_modality",
        "unknown modality",
    ),
]


@pytest.mark.parametrize(
    ("rel", "lineno", "edit", "field", "fragment"),
    [b[1:] for b in BAD_INPUTS],
    ids=[b[0] for b in BAD_INPUTS],
)
def test_bad_input_fails_with_one_line(root, tmp_path, rel, lineno, edit, field, fragment):
    _replace_line(root / rel, lineno, edit)
    out = tmp_path / "out"
    result = runner.invoke(app, ["prepare", "mbeir", "--root", str(root), "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    error = errors[0]
    assert f"{root.resolve() / rel}:{lineno}" in error
    if field is not None:
        assert f"field '{field}'" in error
    assert fragment in error
    assert "Traceback" not in result.output
    assert read_manifest(out) is None


def test_skip_mode_counts_and_lists_rejected_rows(root, tmp_path):
    _replace_line(root / VN_POOL, 2, lambda line: "{not json")
    _replace_line(root / VN_TEST, 1, _json_edit(task_id=99))
    _replace_line(root / CIRR_QRELS, 1, lambda line: "only three cols")
    _replace_line(root / UNION_TEST, 1, _json_edit(img_path="../x.jpg"))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["prepare", "mbeir", "--root", str(root), "--out", str(out), "--on-error", "skip"]
    )
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.counts["rejected"] == 4
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    got = [(Path(r["file"]).relative_to(root.resolve()).as_posix(), r["line"], r["field"]) for r in rejected]
    assert got == [
        (VN_POOL, 2, None),
        (UNION_TEST, 1, "img_path"),
        (VN_TEST, 1, "task_id"),
        (CIRR_QRELS, 1, "columns"),
    ]
    assert all(r["reason"] for r in rejected)
    per_file = manifest.extra["report"]["rejected"]
    assert per_file[str(root.resolve() / VN_POOL)] == 1
    # The bad rows are left out, the rest is kept: one query and one qrels line fewer.
    assert manifest.counts["queries"] == 79 and manifest.counts["qrels"] == 82
    # 0:1 was rejected in its local pool but arrives through union_test; union_test's first row (0:0)
    # was rejected there, yet 0:0 is a candidate from the local pool.
    pools = read_table(out, "pools").to_pylist()
    assert {"pool": "visualnews_task0", "did": "0:1"} not in pools
    assert {"pool": "union_test", "did": "0:1"} in pools
    assert {"pool": "union_test", "did": "0:0"} not in pools
    assert manifest.counts["candidates"] == 70
    assert "rejected rows: 4" in result.output


def test_second_run_says_up_to_date(pristine, tmp_path):
    out = tmp_path / "out"
    args = ["prepare", "mbeir", "--root", str(pristine), "--out", str(out), "--split", "test"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "prepare mbeir: candidate pools" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "up to date" in second.output
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0 and "up to date" not in forced.output and "redo" in forced.output


def test_bad_options(pristine, tmp_path):
    base = ["prepare", "mbeir", "--root", str(pristine), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*base, "--split", "train,dev"])
    assert result.exit_code == 2 and "field '--split'" in result.output and "'dev'" in result.output
    result = runner.invoke(app, [*base, "--on-error", "ignore"])
    assert result.exit_code == 2 and "'--on-error'" in result.output and "'fail', 'skip'" in result.output
    result = runner.invoke(
        app, ["prepare", "mbeir", "--root", str(tmp_path / "nope"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "M-BEIR root is not a folder" in result.output


def test_help_names_every_option():
    result = runner.invoke(app, ["prepare", "mbeir", "--help"])
    assert result.exit_code == 0
    for flag in ("--root", "--out", "--split", "--tasks", "--on-error", "--rows-per-shard", "--force"):
        assert flag in result.output
