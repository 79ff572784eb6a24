from __future__ import annotations

import csv
import json
import sys

import pytest
from PIL import Image

from tests.evaluation.fixtures import FakeEmbedder, write_prepared
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation import evaluate_mbeir, model_search
from umarvel_cli.evaluation.published import load_published


@pytest.fixture
def prepared(tmp_path):
    return write_prepared(tmp_path / "data")


@pytest.fixture
def fake(monkeypatch):
    embedder = FakeEmbedder()
    monkeypatch.setattr(model_search, "load_run_embed", lambda: embedder)
    return embedder


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def scores(record):
    return {t["task"]: t["score"] for t in record["tasks"]}


def test_local_with_model_known_rankings_known_metrics(prepared, fake, tmp_path, model):
    out = tmp_path / "eval"
    rec = evaluate_mbeir(prepared, "test", "local", out, model=model)
    assert [t["task"] for t in rec["tasks"]] == ["mscoco_task0", "webqa_task1", "nights_task4"]
    assert scores(rec) == {"mscoco_task0": 1.0, "webqa_task1": 1.0, "nights_task4": 0.5}
    assert rec["headline"]["mean"] == pytest.approx(2.5 / 3)
    assert len(rec["headline"]["missing_tasks"]) == 13
    by = {t["task"]: t for t in rec["tasks"]}
    # 9:q1: positives 9:c1 (6th) and 9:c5 (4th, after a tie broken by pool position)
    assert by["mscoco_task0"]["metrics"]["hit@1"] == 0.5
    assert by["mscoco_task0"]["metrics"]["mrr@10"] == pytest.approx((1 + 1 / 4) / 2)
    assert by["mscoco_task0"]["metrics"]["recall@5"] == pytest.approx((1 + 0.5) / 2)
    # 2:q1: 2:c1 3rd after a tie; 2:gone is in no pool and caps true recall
    assert by["webqa_task1"]["metrics"]["recall@100"] == pytest.approx((1 + 0.5) / 2)
    assert by["webqa_task1"]["metrics"]["hit@1"] == 0.5
    assert by["nights_task4"]["n_without_qrels"] == 1 and by["nights_task4"]["n_queries"] == 2
    assert by["mscoco_task0"]["k"] == 5
    # files
    assert json.loads((out / "metrics.json").read_text())["headline"]["mean"] == rec["headline"]["mean"]
    report = (out / "report.md").read_text()
    assert "| U-MARVEL (Qwen2VL-7B) | 47.3 | 84.4 |" in report
    assert "| **umarvel (this run)** | – | 100.0 | – | 100.0 |" in report
    assert "**83.3**" in report
    rows = list(csv.DictReader((out / "per_task.csv").open()))
    assert [r["task"] for r in rows] == ["mscoco_task0", "webqa_task1", "nights_task4", "mean"]
    assert float(rows[2]["score"]) == 0.5
    trec = (out / "run.trec").read_text().splitlines()
    assert trec[0].split()[:4] == ["2:q0", "Q0", "2:c0", "1"]
    assert len(trec) == 8 + 8 + 3 + 3 + 2 + 2
    with Image.open(out / "scores.png") as img:
        assert img.format == "PNG" and img.size[0] > 400
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "eval-mbeir" and manifest["counts"]["queries"] == 6


def test_global_union_and_modality_filter_and_embedding_reuse(prepared, fake, tmp_path, model):
    out = tmp_path / "eval"
    evaluate_mbeir(prepared, "test", "local", out, model=model)
    n_embedded = len(fake.calls) - fake.skipped
    rec = evaluate_mbeir(prepared, "test", "global", out, model=model)
    assert len(fake.calls) - fake.skipped == n_embedded  # queries and all three pools reused
    assert scores(rec) == {"mscoco_task0": 1.0, "webqa_task1": 0.0, "nights_task4": 0.5}
    assert rec["headline"]["mean"] == pytest.approx(0.5)
    assert rec["search"]["searched"] == [{"group": "union", "queries": 6, "candidates": 13}]
    assert "| U-MARVEL (Qwen2VL-7B) | 47.2 | 72.8 |" in (out / "report.md").read_text()
    filtered = evaluate_mbeir(prepared, "test", "global", tmp_path / "f", model=model, modality_filter=True)
    assert scores(filtered) == {"mscoco_task0": 1.0, "webqa_task1": 1.0, "nights_task4": 0.5}
    assert filtered["standard"] is False
    assert "NON-STANDARD" in (tmp_path / "f" / "report.md").read_text()


def test_stage_lifecycle_up_to_date_redo_keeps_embeddings_and_foreign_folders(
    prepared, fake, tmp_path, model
):
    out = tmp_path / "eval"
    first = evaluate_mbeir(prepared, "test", "local", out, model=model)
    n_calls, manifest = len(fake.calls), (out / "manifest.json").read_text()
    assert evaluate_mbeir(prepared, "test", "local", out, model=model) == json.loads(json.dumps(first))
    assert len(fake.calls) == n_calls and (out / "manifest.json").read_text() == manifest
    (out / "stale.txt").write_text("from an older evaluation")
    redone = evaluate_mbeir(prepared, "test", "local", out, model=model, topk=200)
    assert not (out / "stale.txt").exists() and not (out / "_progress.json").exists()
    assert fake.skipped == 4  # queries and the three pools: kept through the redo
    assert json.loads((out / "manifest.json").read_text())["params"]["topk"] == 200
    assert scores(redone) == scores(first)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UmarvelError, match="refusing to overwrite"):
        evaluate_mbeir(prepared, "test", "local", foreign, model=model)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_run_from_any_system_with_ties_and_duplicates(prepared, tmp_path):
    run = tmp_path / "other.trec"
    run.write_text(
        "9:q0 Q0 9:c3 1 0.5 sys\n9:q0 Q0 9:c3 2 0.5 sys\n9:q0 Q0 9:c4 3 0.5 sys\n"
        "9:q0 Q0 9:c5 4 0.5 sys\n9:q0 Q0 9:c6 5 0.5 sys\n9:q0 Q0 9:c0 6 0.5 sys\n"
        "2:q0 Q0 2:c0 2 0.9 sys\n2:q0 Q0 2:c1 1 0.9 sys\n"
    )
    out = tmp_path / "eval"
    rec = evaluate_mbeir(prepared, "test", "local", out, run=run)
    by = {t["task"]: t for t in rec["tasks"]}
    # the duplicate 9:c3 counts once, so 9:c0 is the 5th distinct candidate: a hit at k=5
    assert by["mscoco_task0"]["metrics"]["hit@5"] == 0.5  # 9:q1 absent from the run scores 0
    assert by["mscoco_task0"]["n_without_results"] == 1
    # equal scores: the run's rank decides, so 2:c1 is first and 2:c0 second
    assert by["webqa_task1"]["metrics"]["mrr@10"] == pytest.approx(0.5 / 2)
    assert by["nights_task4"]["n_without_results"] == 2
    assert "U-MARVEL" in (out / "report.md").read_text()
    assert rec["retrieved_outside_pool"] == {"mscoco_task0": 0, "webqa_task1": 0, "nights_task4": 0}
    before = (out / "metrics.json").stat().st_mtime_ns
    assert evaluate_mbeir(prepared, "test", "local", out, run=run) == rec
    assert (out / "metrics.json").stat().st_mtime_ns == before


def test_unknown_ids_in_a_run_are_refused(prepared, tmp_path):
    run = tmp_path / "bad.trec"
    run.write_text("9:q0 Q0 9:c0 1 0.5 sys\n9:qv Q0 9:c0 1 0.5 sys\n")
    with pytest.raises(UmarvelError, match=r"1 query id\(s\) of the run are not test queries.*'9:qv'"):
        evaluate_mbeir(prepared, "test", "local", tmp_path / "o", run=run)
    run.write_text("9:q0 Q0 7:nope 1 0.5 sys\n")
    with pytest.raises(
        UmarvelError, match=r"candidate id\(s\) of the run are not in the prepared candidates.*7:nope"
    ):
        evaluate_mbeir(prepared, "test", "local", tmp_path / "o", run=run)


def test_demo_data_and_val_split_show_no_published_numbers(tmp_path):
    data = write_prepared(tmp_path / "demo", stage="prepare-demo")
    run = tmp_path / "r.trec"
    run.write_text("9:qv Q0 9:c3 1 0.5 sys\n")
    rec = evaluate_mbeir(data, "val", "local", tmp_path / "o", run=run)
    assert scores(rec) == {"mscoco_task0": 1.0}
    report = (tmp_path / "o" / "report.md").read_text()
    assert "U-MARVEL" not in report and "these tables are not M-BEIR" in report


def test_options_are_checked(prepared, tmp_path):
    with pytest.raises(UmarvelError, match="exactly one of --model or --run"):
        evaluate_mbeir(prepared, "test", "local", tmp_path / "o")
    with pytest.raises(UmarvelError, match="--modality-filter only applies"):
        evaluate_mbeir(prepared, "test", "local", tmp_path / "o", run=tmp_path, modality_filter=True)
    with pytest.raises(UmarvelError, match="--modality-filter only applies"):
        evaluate_mbeir(prepared, "test", "global", tmp_path / "o", run=tmp_path, modality_filter=True)
    with pytest.raises(UmarvelError, match="unknown split"):
        evaluate_mbeir(prepared, "train", "local", tmp_path / "o", run=tmp_path)


def test_model_without_embedder_gives_a_clear_error(prepared, tmp_path, monkeypatch, model):
    monkeypatch.setitem(sys.modules, "umarvel_cli.embedding", None)
    with pytest.raises(UmarvelError, match="not available yet"):
        evaluate_mbeir(prepared, "test", "local", tmp_path / "o", model=model)


def test_published_rows_match_their_averages():
    for setting, rows in load_published().items():
        assert len(rows) >= 7, setting
        for row in rows:
            assert len(row.values) == 16
            assert sum(row.values.values()) / 16 == pytest.approx(row.avg, abs=0.1), (setting, row.method)


def test_a_run_made_for_another_pool_is_flagged(prepared, tmp_path):
    run = tmp_path / "global.trec"
    run.write_text("2:q0 Q0 9:c0 1 0.9 s\n2:q0 Q0 2:c0 2 0.8 s\n9:q0 Q0 9:c0 1 0.9 s\n")
    rec = evaluate_mbeir(prepared, "test", "local", tmp_path / "local", run=run)
    assert rec["retrieved_outside_pool"] == {"mscoco_task0": 0, "webqa_task1": 1, "nights_task4": 0}
    assert (
        "WARNING: 1 retrieved candidates lie outside the local pool"
        in (tmp_path / "local" / "report.md").read_text()
    )
    rec = evaluate_mbeir(prepared, "test", "global", tmp_path / "global", run=run)
    assert set(rec["retrieved_outside_pool"].values()) == {0}


def test_val_split_of_mbeir_tables_shows_no_published_numbers(prepared, tmp_path):
    run = tmp_path / "r.trec"
    run.write_text("9:qv Q0 9:c0 1 0.5 sys\n9:qv Q0 9:c3 2 0.4 sys\n")
    rec = evaluate_mbeir(prepared, "val", "local", tmp_path / "o", run=run)
    assert scores(rec) == {"mscoco_task0": 1.0}
    assert rec["tasks"][0]["metrics"]["mrr@10"] == 0.5
    report = (tmp_path / "o" / "report.md").read_text()
    assert "U-MARVEL" not in report and "this is val" in report
