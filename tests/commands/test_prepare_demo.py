"""`umarvel prepare demo`: writes the tree, says up to date, refuses bad sizes and foreign folders."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts.manifest import read_manifest

runner = CliRunner()


def test_writes_the_demo_then_says_up_to_date(tmp_path, demo_counts):
    _, counts = demo_counts
    out = tmp_path / "demo"
    result = runner.invoke(app, ["prepare", "demo", "--out", str(out), "--seed", "0", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    n_queries = sum(n for split in counts["queries"].values() for n in split.values())
    assert result.stdout.startswith(f"wrote {out}: {n_queries} queries, {counts['candidates']} candidates")
    manifest = read_manifest(out)
    assert manifest.stage == "prepare-demo" and manifest.params == {"seed": 0, "size": "tiny"}
    assert manifest.counts["queries.test.cirr_task7"] == counts["queries"]["test"]["cirr_task7"]
    assert manifest.counts["pools.union_test"] == counts["pools"]["union_test"]
    assert manifest.extra["images_root"] == str(out.resolve())
    assert not (out / "_progress.json").exists()

    again = runner.invoke(app, ["prepare", "demo", "--out", str(out)])
    assert again.exit_code == 0 and again.stdout.startswith("up to date:")
    assert read_manifest(out).created == manifest.created


def test_same_seed_through_the_cli_gives_the_same_files(tmp_path, demo_root):
    out = tmp_path / "demo"
    assert runner.invoke(app, ["prepare", "demo", "--out", str(out)]).exit_code == 0
    for rel in (
        "query/test/mbeir_oven_task6_test.jsonl",
        "cand_pool/global/mbeir_union_train_cand_pool.jsonl",
    ):
        assert (out / rel).read_bytes() == (demo_root / rel).read_bytes()
    first = json.loads((out / "query/test/mbeir_oven_task6_test.jsonl").read_text().splitlines()[0])
    assert first["task_id"] == 6


def test_bad_size_exits_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["prepare", "demo", "--out", str(tmp_path / "d"), "--size", "huge"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: umarvel prepare demo: Invalid value for '--size': 'huge' is not one of 'tiny', 'small'. "
        "(see umarvel prepare demo --help)"
    )
    assert not (tmp_path / "d").exists()


def test_refuses_a_folder_that_holds_something_else(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = runner.invoke(app, ["prepare", "demo", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"
