"""MSR-VTT (JSFusion csv) and MSVD (test list + captions pickle read without running any code)."""

from __future__ import annotations

import os
import pickle

import pytest

from tests.data.zeroshot.releases import write_msrvtt, write_msvd
from umarvel_cli.artifacts import read_table
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.data.zeroshot.safe_pickle import load_plain_pickle
from umarvel_cli.errors import UmarvelError


def test_msrvtt_keys_and_video_ids(tmp_path):
    root = write_msrvtt(tmp_path / "msrvtt")
    counts = prepare_zeroshot("msrvtt", root, tmp_path / "out")
    assert counts["queries"] == 3 and counts["candidates"] == 3
    q = read_table(tmp_path / "out", "queries").to_pylist()
    assert [r["qid"] for r in q] == ["ret0", "ret1", "ret2"]
    assert q[1]["text"] == "a person does thing 1" and q[1]["pos"] == ["video7001"]
    c = {r["did"]: r for r in read_table(tmp_path / "out", "candidates").to_pylist()}
    assert c["video7002"]["modality"] == "video" and c["video7002"]["image"] == "videos/all/video7002.mp4"


def test_msrvtt_missing_video_and_bad_header(tmp_path):
    root = write_msrvtt(tmp_path / "msrvtt")
    (root / "videos/all/video7001.mp4").unlink()
    with pytest.raises(UmarvelError, match="line 3 \\(key ret1\\) names video 'video7001'"):
        prepare_zeroshot("msrvtt", root, tmp_path / "out")
    (root / "MSRVTT_JSFUSION_test.csv").write_text("key,video_id,caption\nret0,video7000,x\n")
    with pytest.raises(UmarvelError, match="no column vid_key, sentence"):
        prepare_zeroshot("msrvtt", root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_undecodable_video_and_frame_folder(tmp_path):
    root = write_msrvtt(tmp_path / "msrvtt")
    (root / "videos/all/video7002.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 40)
    with pytest.raises(UmarvelError, match="video7002.mp4: cannot decode video"):
        prepare_zeroshot("msrvtt", root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (root / "videos/all/video7002.mp4").unlink()
    (root / "videos/all/video7002").mkdir()  # a folder of frames stands for the video
    prepare_zeroshot("msrvtt", root, tmp_path / "out")
    c = {r["did"]: r["image"] for r in read_table(tmp_path / "out", "candidates").to_pylist()}
    assert c["video7002"] == "videos/all/video7002"


def test_msvd_captions_become_queries_with_video_names(tmp_path):
    root = write_msvd(tmp_path / "msvd")
    counts = prepare_zeroshot("msvd", root, tmp_path / "out")
    assert counts["queries"] == 3 and counts["candidates"] == 2
    q = {r["qid"]: r for r in read_table(tmp_path / "out", "queries").to_pylist()}
    assert q["-4wsuPCjDBc_5_15#1"]["text"] == "someone cooks"
    assert q["zv2RIbUsnSw_159_167#0"]["pos"] == ["zv2RIbUsnSw_159_167"]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_msvd(tmp_path / "msvd", captions={"-4wsuPCjDBc_5_15": [_Exploit()]})
    with pytest.raises(UmarvelError, match="refused to load global .*system"):
        prepare_zeroshot("msvd", root, tmp_path / "out")
    assert not (tmp_path / "PWNED").exists()
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": set(), "b": [1.5, None, b"x", ("t",)]}))
    assert load_plain_pickle(evil) == {"a": set(), "b": [1.5, None, b"x", ("t",)]}


def test_msvd_video_without_captions(tmp_path):
    root = write_msvd(tmp_path / "msvd", captions={"-4wsuPCjDBc_5_15": [["a"]]})
    with pytest.raises(UmarvelError, match="video 'zv2RIbUsnSw_159_167' has no captions"):
        prepare_zeroshot("msvd", root, tmp_path / "out")
