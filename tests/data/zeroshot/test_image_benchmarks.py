"""Flickr30K (Karpathy JSON), GeneCIS (per-query galleries, attribute crops) and SugarCrepe (choices)."""

from __future__ import annotations

from PIL import Image

from tests.data.zeroshot.releases import write_flickr30k, write_genecis, write_sugarcrepe
from umarvel_cli.artifacts import read_manifest, read_table
from umarvel_cli.data.zeroshot import prepare_zeroshot


def test_flickr30k_both_directions_with_sentids_and_filenames(tmp_path):
    root = write_flickr30k(tmp_path / "f30k")
    counts = prepare_zeroshot("flickr30k", root, tmp_path / "out")
    # 2 test images x 2 sentences: 4 t->i queries + 2 i->t queries; the train image is left out.
    assert counts["queries"] == 6 and counts["candidates"] == 6 and counts["qrels"] == 8
    q = {r["qid"]: r for r in read_table(tmp_path / "out", "queries").to_pylist()}
    assert q["2"]["text"] == "Two men 1-0." and q["2"]["pos"] == ["10002456.jpg"] and q["2"]["task_id"] == 0
    assert q["10002456.jpg"]["pos"] == ["2", "3"] and q["10002456.jpg"]["task_id"] == 3
    assert (q["2"]["dataset_id"], q["10002456.jpg"]["dataset_id"]) == (1040, 1041)
    assert "1000268201.jpg" not in q
    pools = read_table(tmp_path / "out", "pools").to_pylist()
    assert [r["did"] for r in pools if r["pool"] == "flickr30k_t2i"] == ["1000092795.jpg", "10002456.jpg"]
    assert [r["did"] for r in pools if r["pool"] == "flickr30k_i2t"] == ["0", "1", "2", "3"]


def test_genecis_galleries_and_crops(tmp_path):
    root = write_genecis(tmp_path / "genecis")
    counts = prepare_zeroshot("genecis", root, tmp_path / "out")
    assert counts["queries"] == 4 and counts["galleries"] == 2 * 3 + 2 * 2 and counts["crops"] == 3
    g = read_table(tmp_path / "out", "galleries").to_pylist()
    assert [r["did"] for r in g if r["qid"] == "change_object/0"] == ["153527", "121506", "536947"]
    q = {r["qid"]: r for r in read_table(tmp_path / "out", "queries").to_pylist()}
    assert q["focus_object/0"]["text"] == "wall" and q["focus_object/0"]["pos"] == ["153527"]
    # the crops live in OUT, so OUT is the images root and the release is reached through OUT/release
    assert q["focus_object/0"]["image"] == "release/val2017/000000189213.jpg"
    assert q["focus_attribute/0"]["image"] == "crops/1_10_10_20_30.png"
    m = read_manifest(tmp_path / "out")
    assert m.extra["images_root"] == str((tmp_path / "out").resolve())
    assert (tmp_path / "out/release/val2017/000000189213.jpg").is_file()
    pools = read_table(tmp_path / "out", "pools").to_pylist()
    assert [r["did"] for r in pools if r["pool"] == "focus_object"] == ["153527", "121506", "536947"]
    target = q["focus_attribute/0"]["pos"][0]
    assert target == "2_30_20_40_40"
    # dilation 0.7 of a 40x40 box at (30, 20) in a 100x80 image: left 2, top 0, right 70, bottom 68 -> padded square
    with Image.open(tmp_path / "out/crops" / f"{target}.png") as im:
        assert im.size == (68, 68)


def test_sugarcrepe_choice_galleries(tmp_path):
    root = write_sugarcrepe(tmp_path / "sc")
    counts = prepare_zeroshot("sugarcrepe", root, tmp_path / "out")
    assert counts["queries"] == 14 and counts["candidates"] == 28 and counts["galleries"] == 28
    c = {r["did"]: r["text"] for r in read_table(tmp_path / "out", "candidates").to_pylist()}
    assert (
        c["swap_att/0/pos"] == "A girl with a green shirt."
        and c["swap_att/0/neg"] == "A girl with a blue shirt."
    )
    q = {r["qid"]: r for r in read_table(tmp_path / "out", "queries").to_pylist()}
    assert q["swap_att/1"]["pos"] == ["swap_att/1/pos"] and q["swap_att/1"]["neg"] == ["swap_att/1/neg"]
