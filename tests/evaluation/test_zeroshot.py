"""`umarvel eval zeroshot`: runs in release ids scored with each benchmark's protocol."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.data.zeroshot.releases import write_circo, write_genecis, write_msrvtt, write_sugarcrepe
from umarvel_cli.app import app
from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, read_manifest, write_manifest
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot

runner = CliRunner()


def _trec(path: Path, rankings: dict[str, list[str]]) -> Path:
    lines = [
        f"{q} Q0 {d} {r} {100 - r} sys" for q, dids in rankings.items() for r, d in enumerate(dids, start=1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_circo_val_map_recall_report_and_up_to_date(tmp_path):
    prepare_zeroshot("circo", write_circo(tmp_path / "CIRCO"), tmp_path / "tables")
    # query 0: gts {9761 (target), 489535, 57541}; hits at 2 (489535) and 3 (9761) -> AP@5 = (1/2 + 2/3) / 3
    # query 1: gt {2000}; hit at 1 -> AP@5 = 1
    run = _trec(
        tmp_path / "run.trec",
        {"0": ["85932", "489535", "9761", "1000", "2000", "57541"], "1": ["2000", "1000"]},
    )
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo", "--data", str(tmp_path / "tables"), "--run", str(run),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "ev/metrics.json").read_text())
    task = record["tasks"][0]
    assert task["metrics"]["map@5"] == pytest.approx(((1 / 2 + 2 / 3) / 3 + 1) / 2)
    # query 0 finds its third gt at rank 6: AP@10 adds 3/6.
    assert task["metrics"]["map@10"] == pytest.approx(((1 / 2 + 2 / 3 + 1 / 2) / 3 + 1) / 2)
    assert task["metrics"]["r@5"] == 1.0  # the target of query 0 is at rank 3
    assert "map@5" in record["definitions"] or "map@k" in record["definitions"]
    report = (tmp_path / "ev/report.md").read_text()
    assert "| circo | (i,t)→i | ranking | 2 | map@5 | 69.4 | 36.2 |" in report
    rows = list(csv.DictReader((tmp_path / "ev/per_query.csv").read_text().splitlines()))
    assert [r["qid"] for r in rows] == ["0", "1"] and float(rows[1]["map@5"]) == 1.0
    assert (tmp_path / "ev/run.trec").read_text().splitlines()[0].startswith("0 Q0 85932 1 ")
    assert read_manifest(tmp_path / "ev").stage == "eval-zeroshot"
    assert read_manifest(tmp_path / "ev").extra["files"]["chart"] == "scores.png"
    with Image.open(tmp_path / "ev/scores.png") as im:
        assert im.width > 100 and im.height > 50
    again = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo", "--data", str(tmp_path / "tables"), "--run", str(run),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert again.exit_code == 0 and "up to date" in again.output


def test_circo_test_writes_the_server_submission(tmp_path):
    prepare_zeroshot("circo", write_circo(tmp_path / "CIRCO"), tmp_path / "tables", split="test")
    run = _trec(tmp_path / "run.trec", {"1": ["2000", "1000", "2000"], "0": ["9761", "57541"]})
    record = evaluate_zeroshot("circo", tmp_path / "tables", tmp_path / "ev", run)
    assert record["has_ground_truth"] is False and record["tasks"] == []
    sub = json.loads((tmp_path / "ev/circo_test_submission.json").read_text())
    assert sub == {"0": [9761, 57541], "1": [2000, 1000]}
    assert "circo_test_submission.json" in (tmp_path / "ev/report.md").read_text()
    short = _trec(tmp_path / "short.trec", {"0": ["9761"]})
    with pytest.raises(Exception, match="1 test queries have no results"):
        evaluate_zeroshot("circo", tmp_path / "tables", tmp_path / "ev2", short)


def test_msrvtt_from_a_run_table_recall_and_ranks(tmp_path):
    prepare_zeroshot("msrvtt", write_msrvtt(tmp_path / "m", n=3), tmp_path / "tables")
    rows = [("ret0", "video7000", 1, 0.9), ("ret0", "video7001", 2, 0.5),
            ("ret1", "video7000", 1, 0.8), ("ret1", "video7002", 2, 0.7), ("ret1", "video7001", 3, 0.1),
            ("ret2", "video7000", 1, 0.3)]  # fmt: skip
    with ShardWriter(tmp_path / "search", "run", TABLES["run"]) as w:
        w.write_rows([{"qid": q, "did": d, "rank": r, "score": s} for q, d, r, s in rows])
    write_manifest(tmp_path / "search", Manifest(stage="search", params={}, counts={"rows": len(rows)}))
    record = evaluate_zeroshot("msrvtt", tmp_path / "tables", tmp_path / "ev", tmp_path / "search")
    m = record["tasks"][0]["metrics"]
    # ranks of the true video: 1, 3, absent (-> 3 candidates, the worst rank)
    assert m["r@1"] == pytest.approx(1 / 3) and m["r@5"] == pytest.approx(2 / 3)
    assert m["median_rank"] == 3.0 and m["mean_rank"] == pytest.approx(7 / 3)
    assert "| msrvtt_t2v | t→v | ranking | 3 | r@1 | 33.3 | 47.2 |" in (tmp_path / "ev/report.md").read_text()


def test_genecis_scores_within_galleries_and_averages_subsets(tmp_path):
    prepare_zeroshot("genecis", write_genecis(tmp_path / "g"), tmp_path / "tables")
    att_target, att_other = "2_30_20_40_40", "3_0_0_50_40"
    run = _trec(
        tmp_path / "run.trec",
        {
            # non-gallery images first; within the gallery the target comes first -> R@1 = 1
            "focus_object/0": ["189213", "121506", "153527", "536947"][2:] + ["121506"],
            "change_object/0": ["121506", "153527", "536947"],  # target second -> R@1 0, R@2 1
            "focus_attribute/0": [att_other, att_target],  # target second
            "change_attribute/0": [att_target, att_other],  # target first
        },
    )
    record = evaluate_zeroshot("genecis", tmp_path / "tables", tmp_path / "ev", run)
    r1 = {t["task"]: t["metrics"]["r@1"] for t in record["tasks"]}
    assert r1 == {"focus_attribute": 0.0, "change_attribute": 1.0, "focus_object": 1.0, "change_object": 0.0}
    assert {t["task"]: t["metrics"]["r@2"] for t in record["tasks"]}["change_object"] == 1.0
    assert record["headline"]["score"] == 0.5 and record["headline"]["paper"] == 19.1


def test_sugarcrepe_choice_accuracy(tmp_path):
    prepare_zeroshot("sugarcrepe", write_sugarcrepe(tmp_path / "s"), tmp_path / "tables")
    lines = []
    for subset in ("add_obj", "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj", "swap_att"):
        lines.append(f"{subset}/0 Q0 {subset}/0/pos 1 0.9 sys")
        lines.append(f"{subset}/0 Q0 {subset}/0/neg 2 0.2 sys")
        tie = 0.5 if subset == "swap_att" else 0.1
        lines.append(f"{subset}/1 Q0 {subset}/1/neg 1 0.5 sys")
        lines.append(f"{subset}/1 Q0 {subset}/1/pos 2 {tie} sys")
    (tmp_path / "run.trec").write_text("\n".join(lines) + "\n")
    record = evaluate_zeroshot("sugarcrepe", tmp_path / "tables", tmp_path / "ev", tmp_path / "run.trec")
    acc = {t["task"]: t["metrics"]["accuracy"] for t in record["tasks"]}
    assert set(acc.values()) == {0.5}  # one right, one wrong (swap_att's tie counts as wrong)
    assert record["headline"]["score"] == 0.5


def test_wrong_benchmark_run_or_tables_is_one_line_exit_2(tmp_path):
    prepare_zeroshot("circo", write_circo(tmp_path / "CIRCO"), tmp_path / "circo")
    prepare_zeroshot("msrvtt", write_msrvtt(tmp_path / "m"), tmp_path / "msrvtt")
    msrvtt_run = _trec(tmp_path / "run.trec", {"ret0": ["video7000"]})
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo", "--data", str(tmp_path / "circo"), "--run", str(msrvtt_run),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 2
    assert (
        "query id(s) of the run are not val queries" in res.output
        and len(res.output.strip().splitlines()) == 1
    )
    assert not (tmp_path / "ev").exists()
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "circo", "--data", str(tmp_path / "msrvtt"), "--run", str(msrvtt_run),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 2 and "holds 'msrvtt' tables, not 'circo'" in res.output


def test_model_mode_embeds_each_task_pool_and_scores_galleries(tmp_path, tmp_path_factory):
    from tests.models.tiny_models import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    prepare_zeroshot("sugarcrepe", write_sugarcrepe(tmp_path / "s"), tmp_path / "tables")
    record = evaluate_zeroshot("sugarcrepe", tmp_path / "tables", tmp_path / "ev", model=model)
    assert [s["group"] for s in record["search"]["searched"]] == [t["task"] for t in record["tasks"]]
    assert all(s["candidates"] == 4 and s["queries"] == 2 for s in record["search"]["searched"])
    assert all(0.0 <= t["score"] <= 1.0 and t["n_without_results"] == 0 for t in record["tasks"])
    # every query got a score for both of its options, so the accuracy is decided by the model
    rows = [line.split() for line in (tmp_path / "ev/run.trec").read_text().splitlines()]
    assert len(rows) == 14 * 2
    assert sorted((tmp_path / "ev/embeddings").iterdir())[0].name == "pool-add_att"


def test_model_mode_needs_exactly_one_source(tmp_path):
    prepare_zeroshot("msrvtt", write_msrvtt(tmp_path / "m"), tmp_path / "tables")
    with pytest.raises(Exception, match="exactly one of --model or --run"):
        evaluate_zeroshot("msrvtt", tmp_path / "tables", tmp_path / "ev")


def test_msrvtt_demo_with_a_model_end_to_end(tmp_path, tmp_path_factory):
    """`umarvel eval zeroshot --benchmark msrvtt --model M` on the demo-format MSR-VTT set: the
    videos are embedded (frames through the input pipeline), every caption ranks every clip."""
    from tests.models.tiny_models import tiny_model_dir
    from umarvel_cli.data.zeroshot.demo import write_msrvtt_demo

    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2.5-vl")
    counts = write_msrvtt_demo(tmp_path / "msrvtt", seed=0, n_clips=4)
    res = runner.invoke(
        app,
        ["prepare", "zeroshot", "--benchmark", "msrvtt", "--root", str(tmp_path / "msrvtt"), "--out",
         str(tmp_path / "tables")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "msrvtt", "--data", str(tmp_path / "tables"), "--model", str(model),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "msrvtt_t2v\tr@1\t" in res.output
    metrics = json.loads((tmp_path / "ev/metrics.json").read_text())
    (task,) = metrics["tasks"]
    assert task["n_queries"] == 4 and task["n_without_results"] == 0
    assert 0.0 <= task["score"] <= 1.0
    rows = [line.split() for line in (tmp_path / "ev/run.trec").read_text().splitlines()]
    assert len(rows) == 4 * 4 and {r[2] for r in rows} == {f"video{9000 + n}" for n in range(4)}
    assert counts == {"clips": 4}
    again = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "msrvtt", "--data", str(tmp_path / "tables"), "--model", str(model),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert again.exit_code == 0 and "up to date" in again.output.lower()


def test_corrupt_video_in_a_benchmark_is_one_line_exit_2(tmp_path, tmp_path_factory):
    from tests.models.tiny_models import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    prepare_zeroshot("msrvtt", write_msrvtt(tmp_path / "m", n=2), tmp_path / "tables")
    for clip in (tmp_path / "m/videos/all").iterdir():
        clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 broken")
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--benchmark", "msrvtt", "--data", str(tmp_path / "tables"), "--model", str(model),
         "--out", str(tmp_path / "ev")],
    )  # fmt: skip
    assert res.exit_code == 2 and "cannot decode video" in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "video7000.mp4" in errors[0]
    assert not (tmp_path / "ev/metrics.json").exists()


def test_suite_paper_runs_every_release_found(tmp_path, tmp_path_factory):
    from tests.models.tiny_models import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    write_genecis(tmp_path / "releases/genecis")
    write_msrvtt(tmp_path / "releases/msrvtt")
    res = runner.invoke(
        app,
        ["eval", "zeroshot", "--suite", "paper", "--root", str(tmp_path / "releases"), "--model", str(model),
         "--out", str(tmp_path / "suite")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = (tmp_path / "suite/summary.md").read_text()
    assert "| GeneCIS | mean | mean r@1 over 4 subsets |" in summary and summary.count("| GeneCIS |") == 5
    assert "| MSR-VTT 1k-A | msrvtt_t2v | r@1 |" in summary and "skipped" not in summary
    assert (tmp_path / "suite/msrvtt/eval/metrics.json").is_file()
    assert (tmp_path / "suite/genecis/eval/metrics.json").is_file()
    bad = runner.invoke(app, ["eval", "zeroshot", "--suite", "paper", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--suite takes --root and --model" in bad.output


def test_flickr_both_directions_and_ranks_counted_against_the_task_pool(tmp_path):
    from tests.data.zeroshot.releases import write_flickr30k

    prepare_zeroshot("flickr30k", write_flickr30k(tmp_path / "f"), tmp_path / "tables")
    run = _trec(
        tmp_path / "run.trec",
        {
            "0": ["1000092795.jpg"],  # rank 1
            "1": ["10002456.jpg", "1000092795.jpg"],  # rank 2
            "2": ["1000092795.jpg"],  # its image never retrieved: rank 2, the t→i pool's size
            "3": ["10002456.jpg"],  # rank 1
            "1000092795.jpg": ["2", "0", "1"],  # first of its sentences at rank 2
            "10002456.jpg": ["3"],  # rank 1
        },
    )
    record = evaluate_zeroshot("flickr30k", tmp_path / "tables", tmp_path / "ev", run)
    m = {t["task"]: t["metrics"] for t in record["tasks"]}
    assert m["flickr30k_t2i"]["r@1"] == 0.5 and m["flickr30k_t2i"]["r@5"] == 0.75
    assert m["flickr30k_t2i"]["median_rank"] == 1.5 and m["flickr30k_t2i"]["mean_rank"] == 1.5
    assert m["flickr30k_i2t"]["r@1"] == 0.5 and m["flickr30k_i2t"]["r@5"] == 1.0
    assert m["flickr30k_i2t"]["median_rank"] == 1.5
    report = (tmp_path / "ev/report.md").read_text()
    assert "| flickr30k_t2i | t→i | ranking | 4 | r@1 | 50.0 | 85.4 |" in report
    assert "| flickr30k_i2t | i→t | ranking | 2 | r@1 | 50.0 | 93.3 |" in report
