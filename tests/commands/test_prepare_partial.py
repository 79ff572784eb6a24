"""A partial M-BEIR download (or a user's data with a few tasks): `--tasks auto|all|STEMS`, and eval's mean
over the tasks present."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.shards import read_table

runner = CliRunner()
GONE = ("cirr_task7", "nights_task4")  # their test queries (cirr) and test qrels (nights) are deleted


@pytest.fixture()
def partial_root(demo_root, tmp_path) -> Path:
    root = shutil.copytree(demo_root, tmp_path / "M-BEIR")
    (root / "query/test/mbeir_cirr_task7_test.jsonl").unlink()
    (root / "qrels/test/mbeir_nights_task4_test_qrels.txt").unlink()
    return root


def _prepare(root: Path, out: Path, *extra: str):
    return runner.invoke(
        app, ["prepare", "mbeir", "--root", str(root), "--out", str(out), "--split", "test", *extra]
    )


def _tasks(out: Path) -> set[str]:
    """Tasks with queries in the tables, from the prepare report the manifest keeps."""
    report = read_manifest(out).extra["report"]["tasks"]
    return {key.split("/")[1] for key, row in report.items() if row["queries"]}


def test_auto_reads_the_tasks_present_and_names_the_absent(partial_root, tmp_path):
    out = tmp_path / "tables"
    result = _prepare(partial_root, out)
    assert result.exit_code == 0, result.output
    assert "warning: prepare mbeir: 2 of 16 tasks are absent" in result.stderr
    assert "cirr_task7" in result.stderr and "nights_task4" in result.stderr
    tasks = _tasks(out)
    assert len(tasks) == 14 and not tasks & set(GONE)
    manifest = read_manifest(out)
    assert manifest.params["absent_tasks"] == ["nights_task4", "cirr_task7"]
    assert any("2 of 16 tasks absent" in n for n in manifest.extra["report"]["notes"])


def test_all_requires_the_full_release(partial_root, tmp_path):
    result = _prepare(partial_root, tmp_path / "t", "--tasks", "all")
    assert result.exit_code == 2
    assert "missing M-BEIR" in result.stderr and "docs/mbeir.md" in result.stderr
    assert not (tmp_path / "t").exists()


def test_stems_restrict_and_unknown_stems_are_refused(partial_root, tmp_path):
    out = tmp_path / "t"
    result = _prepare(partial_root, out, "--tasks", "mscoco_task0,webqa_task1")
    assert result.exit_code == 0, result.output
    assert _tasks(out) == {"mscoco_task0", "webqa_task1"}
    assert {q.split(":")[0] for q in read_table(out, "queries").column("qid").to_pylist()} == {"9", "2"}
    result = _prepare(partial_root, tmp_path / "u", "--tasks", "mscoco_task0,coco_task9")
    assert result.exit_code == 2 and "unknown task 'coco_task9'" in result.stderr
    result = _prepare(partial_root, tmp_path / "v", "--tasks", "cirr_task7")
    assert result.exit_code == 2 and "mbeir_cirr_task7_test.jsonl" in result.stderr


def test_no_task_present_fails(demo_root, tmp_path):
    root = shutil.copytree(demo_root, tmp_path / "M-BEIR")
    shutil.rmtree(root / "query" / "test")
    result = _prepare(root, tmp_path / "t")
    assert (
        result.exit_code == 2 and "no M-BEIR task has its query, qrels and pool files here" in result.stderr
    )


def test_eval_averages_over_the_tasks_present_and_says_so(partial_root, tmp_path):
    tables = tmp_path / "tables"
    assert _prepare(partial_root, tables).exit_code == 0
    qrels = read_table(tables, "qrels").to_pylist()
    run = tmp_path / "perfect.trec"  # every query's first positive at rank 1
    seen: set[str] = set()
    lines = []
    for row in qrels:
        if row["relevance"] > 0 and row["qid"] not in seen:
            seen.add(row["qid"])
            lines.append(f"{row['qid']} Q0 {row['did']} 1 1.0 perfect")
    run.write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["eval", "mbeir", "--data", str(tables), "--run", str(run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "mean is over the 14 tasks present, not all 16" in result.stderr
    record = json.loads((out / "metrics.json").read_text())
    assert record["headline"]["over_tasks"] == 14
    assert sorted(record["headline"]["missing_tasks"]) == sorted(GONE)
    assert "mean is over the 14 tasks present" in (out / "report.md").read_text()
