"""CIRCO: release ids (annotation id, COCO image id), target relevance 2, test without ground truth."""

from __future__ import annotations

import json

import pytest

from tests.data.zeroshot.releases import write_circo
from umarvel_cli.artifacts import read_manifest, read_table
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.errors import UmarvelError


def test_val_tables_keep_release_ids(tmp_path):
    root = write_circo(tmp_path / "CIRCO")
    counts = prepare_zeroshot("circo", root, tmp_path / "out")
    assert counts == {
        "queries": 2,
        "candidates": 6,
        "pools": 6,
        "qrels": 4,
        "galleries": 0,
        "instructions": 1,
        "crops": 0,
    }
    q = {r["qid"]: r for r in read_table(tmp_path / "out", "queries").to_pylist()}
    assert q["0"]["text"] == "is held by a little girl"
    assert q["0"]["image"] == "COCO2017_unlabeled/unlabeled2017/000000085932.jpg"
    assert q["0"]["modality"] == "image,text" and q["0"]["split"] == "val"
    assert (q["0"]["task_id"], q["0"]["dataset_id"]) == (7, 1010)  # (i,t)→i task type; CIRCO's only task
    assert json.loads(q["0"]["src_content"])["shared_concept"] == "a teddy bear"
    qrels = {(r["qid"], r["did"]): r["relevance"] for r in read_table(tmp_path / "out", "qrels").to_pylist()}
    assert qrels == {("0", "9761"): 2, ("0", "489535"): 1, ("0", "57541"): 1, ("1", "2000"): 2}
    dids = set(read_table(tmp_path / "out", "candidates").column("did").to_pylist())
    assert dids == {"9761", "85932", "489535", "57541", "1000", "2000"}
    m = read_manifest(tmp_path / "out")
    assert m.stage == "prepare-zeroshot" and m.extra["benchmark"] == "circo"
    assert m.extra["images_root"] == str(root.resolve())


def test_second_run_is_up_to_date_and_test_split_has_no_qrels(tmp_path, capsys):
    root = write_circo(tmp_path / "CIRCO")
    prepare_zeroshot("circo", root, tmp_path / "out")
    prepare_zeroshot("circo", root, tmp_path / "out")
    assert "up to date" in capsys.readouterr().err
    counts = prepare_zeroshot("circo", root, tmp_path / "test", split="test")
    assert counts["queries"] == 2 and counts["qrels"] == 0


def test_annotation_naming_an_unknown_image_is_one_line_and_writes_nothing(tmp_path):
    root = write_circo(tmp_path / "CIRCO")
    val = json.loads((root / "annotations/val.json").read_text())
    val[1]["gt_img_ids"].append(424242)
    (root / "annotations/val.json").write_text(json.dumps(val))
    with pytest.raises(UmarvelError, match="query id 1 names image id 424242"):
        prepare_zeroshot("circo", root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_image_file_and_missing_annotations(tmp_path):
    root = write_circo(tmp_path / "CIRCO")
    (root / "COCO2017_unlabeled/unlabeled2017/000000002000.jpg").unlink()
    with pytest.raises(UmarvelError, match="names image '000000002000.jpg'"):
        prepare_zeroshot("circo", root, tmp_path / "out")
    (root / "annotations/val.json").unlink()
    with pytest.raises(UmarvelError, match="annotation file not found"):
        prepare_zeroshot("circo", root, tmp_path / "out")


def test_unknown_benchmark_lists_the_known_ones(tmp_path):
    with pytest.raises(UmarvelError) as e:
        prepare_zeroshot("cirr", tmp_path, tmp_path / "out")
    assert "unknown benchmark 'cirr'" in str(e.value)
    known = "ccneg, circo, flickr30k, genecis, msrvtt, msvd, sharegpt4v, sugarcrepe, urban1k, visdial"
    assert known in str(e.value)


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from umarvel_cli.app import app

    root = write_circo(tmp_path / "CIRCO")
    (root / "annotations/val.json").unlink()
    res = CliRunner().invoke(
        app,
        ["prepare", "zeroshot", "--benchmark", "circo", "--root", str(root), "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {root / 'annotations/val.json'}: annotation file not found"
    res = CliRunner().invoke(
        app, ["prepare", "zeroshot", "--benchmark", "nope", "--root", str(root), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "unknown benchmark 'nope'" in res.output and "msrvtt" in res.output
    assert not (tmp_path / "o").exists()
