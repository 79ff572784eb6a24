"""ShareGPT4V-1k, Urban-1K, VisDial v1.0 val and CC-Neg, each from records in its release format."""

from __future__ import annotations

import os

import pytest
import torch

from tests.data.zeroshot.releases import write_ccneg, write_sharegpt4v, write_urban1k, write_visdial
from umarvel_cli.artifacts import read_table
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.errors import UmarvelError


def _queries(out):
    return {r["qid"]: r for r in read_table(out, "queries").to_pylist()}


def test_sharegpt4v_pairs_both_directions(tmp_path):
    counts = prepare_zeroshot("sharegpt4v", write_sharegpt4v(tmp_path / "s"), tmp_path / "out")
    assert counts["queries"] == 6 and counts["candidates"] == 6
    q = _queries(tmp_path / "out")
    assert q["1"]["text"] == "A long caption number 1." and q["1"]["pos"] == ["sa_1.jpg"]
    assert q["sa_2.jpg"]["image"] == "val_data/sa_2.jpg" and q["sa_2.jpg"]["pos"] == ["2"]


def test_urban1k_first_line_and_file_names(tmp_path):
    counts = prepare_zeroshot("urban1k", write_urban1k(tmp_path / "u"), tmp_path / "out")
    assert counts["queries"] == 6
    q = _queries(tmp_path / "out")
    assert q["2.txt"]["text"] == "An urban street scene 2 with many details." and q["2.txt"]["pos"] == [
        "2.jpg"
    ]
    assert q["3.jpg"]["pos"] == ["3.txt"]


def test_urban1k_caption_without_image(tmp_path):
    root = write_urban1k(tmp_path / "u")
    (root / "image/2.jpg").unlink()
    with pytest.raises(UmarvelError, match="caption 2.txt names image '2.jpg'"):
        prepare_zeroshot("urban1k", root, tmp_path / "out")


def test_visdial_dialog_text_and_image_names(tmp_path):
    counts = prepare_zeroshot("visdial", write_visdial(tmp_path / "v"), tmp_path / "out")
    assert counts["queries"] == 2 and counts["candidates"] == 2
    q = _queries(tmp_path / "out")
    assert q["185565"]["text"] == "Q: is it sunny? A: yes. Q: how many people? A: two."
    assert q["185565"]["pos"] == ["VisualDialog_val2018_000000185565.jpg"]


def test_ccneg_choices_from_the_torch_file(tmp_path):
    counts = prepare_zeroshot("ccneg", write_ccneg(tmp_path / "c"), tmp_path / "out")
    assert counts["queries"] == 3 and counts["galleries"] == 6
    c = {r["did"]: r["text"] for r in read_table(tmp_path / "out", "candidates").to_pylist()}
    assert c["1/pos"] == "a dog on a sofa 1" and c["1/neg"] == "a dog but not on a sofa 1"  # commas dropped
    assert _queries(tmp_path / "out")["0"]["image"] == "training/0000000.jpg"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_ccneg_torch_file_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "c"
    root.mkdir()
    torch.save({"image_paths": [], "annotations": [_Exploit()]}, root / "ccneg_preprocessed.pt")
    with pytest.raises(UmarvelError, match="not a plain-data torch file"):
        prepare_zeroshot("ccneg", root, tmp_path / "out")
    assert not (tmp_path / "PWNED").exists()
