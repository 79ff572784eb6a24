"""The demo's zero-shot sets: CIRCO- and MSR-VTT-format releases that prepare and score like the real ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from umarvel_cli.artifacts import read_table
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.data.zeroshot.demo import write_zeroshot_demo
from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot
from umarvel_cli.models.inputs.video import read_video_frames


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zs-demo")
    return root, write_zeroshot_demo(root, seed=0)


def test_same_seed_same_release(demo, tmp_path):
    root, counts = demo
    assert counts == {"circo": {"images": 72, "val_queries": 12, "test_queries": 12}, "msrvtt": {"clips": 8}}
    write_zeroshot_demo(tmp_path, seed=0)
    for rel in (
        "CIRCO/annotations/val.json",
        "CIRCO/annotations/test.json",
        "msrvtt/MSRVTT_JSFUSION_test.csv",
    ):
        assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes()


def test_circo_demo_prepares_and_an_oracle_run_scores_full_marks(demo, tmp_path):
    root, _ = demo
    prepare_zeroshot("circo", root / "CIRCO", tmp_path / "tables")
    val = json.loads((root / "CIRCO/annotations/val.json").read_text())
    assert all(v["gt_img_ids"][0] == v["target_img_id"] for v in val)
    lines = [
        f"{v['id']} Q0 {g} {r} {100 - r} oracle" for v in val for r, g in enumerate(v["gt_img_ids"], start=1)
    ]
    (tmp_path / "oracle.trec").write_text("\n".join(lines) + "\n")
    record = evaluate_zeroshot("circo", tmp_path / "tables", tmp_path / "ev", tmp_path / "oracle.trec")
    assert record["tasks"][0]["metrics"]["map@5"] == 1.0 and record["tasks"][0]["metrics"]["r@5"] == 1.0
    assert record["synthetic"] is True and record["paper_method"] is None
    report = (tmp_path / "ev/report.md").read_text()
    assert "| circo | (i,t)→i | ranking | 12 | map@5 | 100.0 | – |" in report and "synthetic data" in report


def test_msrvtt_demo_clips_decode_and_move(demo, tmp_path):
    root, _ = demo
    counts = prepare_zeroshot("msrvtt", root / "msrvtt", tmp_path / "tables")
    assert counts["queries"] == 8 and counts["candidates"] == 8
    q = read_table(tmp_path / "tables", "queries").to_pylist()
    assert q[0]["qid"] == "ret0" and q[0]["pos"] == ["video9000"] and " moves from " in q[0]["text"]
    frames = read_video_frames(root / "msrvtt/videos/all/video9000.mp4")
    assert [f.index for f in frames] == [0, 5, 10, 15]  # 2 s at 8 fps -> 4 frames at 2 fps
    first, last = (np.asarray(f.image, dtype=np.int16) for f in (frames[0], frames[-1]))
    assert np.abs(first - last).mean() > 5  # the shape moved
