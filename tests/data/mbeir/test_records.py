from __future__ import annotations

import pytest

from umarvel_cli.artifacts.paths import safe_relative
from umarvel_cli.data.mbeir.records import (
    RowError,
    clean_image,
    parse_candidate,
    parse_instruction_line,
    parse_qrels_line,
    parse_query,
)
from umarvel_cli.errors import UmarvelError

TASKS = {0, 1, 2, 3, 4, 6, 7, 8}

PATHS = [
    "mbeir_images/mscoco_images/val2014/COCO_val2014_000000391895.jpg",
    "a/b.jpg",
    "./a/b.jpg",
    "a//b.jpg",
    "a/./b.jpg",
    "a/b/",
    "a\\b.jpg",
    "a/..b/c.jpg",
    "x..y.jpg",
    ".",
    "./",
    "a/../b.jpg",
    "../a.jpg",
    "/abs/a.jpg",
    "\\abs\\a.jpg",
    "C:/a.jpg",
    "a",
]


@pytest.mark.parametrize("path", PATHS)
def test_clean_image_matches_safe_relative(path):
    """The fast path must give exactly what the reference `safe_relative` gives (or reject the same)."""
    try:
        expected = safe_relative(path) or None
    except UmarvelError as e:
        with pytest.raises(RowError) as info:
            clean_image(path, "img_path")
        assert info.value.field == "img_path" and info.value.reason == e.message
        return
    assert clean_image(path, "img_path") == expected


def test_parse_candidate_real_record():
    rec = {
        "txt": None,
        "img_path": "mbeir_images/fashion200k_images/tops/blouses/56925626/56925626_2.jpg",
        "modality": "image",
        "did": "1:2",
        "src_content": None,
    }
    assert parse_candidate(rec) == (
        "1:2",
        "image",
        None,
        "mbeir_images/fashion200k_images/tops/blouses/56925626/56925626_2.jpg",
        None,
    )
    text = {
        "txt": "A man riding.",
        "img_path": "null",
        "modality": "text",
        "did": "9:14174",
        "src_content": "",
    }
    assert parse_candidate(text) == ("9:14174", "text", "A man riding.", None, None)


@pytest.mark.parametrize(
    ("rec", "field", "fragment"),
    [
        ([1, 2], None, "not a JSON object"),
        ({"modality": "text", "txt": "t"}, "did", "missing field"),
        ({"did": 3, "modality": "text", "txt": "t"}, "did", "non-empty string"),
        ({"did": "1:1", "txt": "t"}, "modality", "missing field"),
        ({"did": "1:1", "modality": "text,image", "txt": "t"}, "modality", "unknown modality"),
        ({"did": "1:1", "modality": "text", "txt": ""}, "txt", "needs a text"),
        (
            {"did": "1:1", "modality": "image,text", "txt": "t", "img_path": None},
            "img_path",
            "needs an image",
        ),
        ({"did": "1:1", "modality": "text", "txt": 5}, "txt", "must be a string"),
        (
            {"did": "1:1", "modality": "text", "txt": "t", "src_content": {"a": 1}},
            "src_content",
            "JSON string",
        ),
    ],
)
def test_parse_candidate_rejects(rec, field, fragment):
    with pytest.raises(RowError) as info:
        parse_candidate(rec)
    assert info.value.field == field and fragment in info.value.reason


def test_parse_query_real_record():
    rec = {
        "qid": "9:6",
        "query_txt": None,
        "query_img_path": "mbeir_images/mscoco_images/val2014/COCO_val2014_000000391895.jpg",
        "query_modality": "image",
        "query_src_content": None,
        "pos_cand_list": ["9:2", "9:3", "9:4", "9:5", "9:6"],
        "neg_cand_list": [],
        "task_id": 3,
    }
    qid, modality, text, image, pos, neg, src, task = parse_query(rec, TASKS)
    assert (qid, modality, text, task) == ("9:6", "image", None, 3)
    assert image.endswith("COCO_val2014_000000391895.jpg") and pos == ["9:2", "9:3", "9:4", "9:5", "9:6"]
    # neg_cand_list and query_src_content may be absent (third-party abbreviations of the record)
    short = {"qid": "9:1", "query_txt": "A man.", "query_img_path": None, "query_modality": "text"}
    assert parse_query({**short, "pos_cand_list": ["9:1"], "task_id": 0}, TASKS)[5] == []


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"pos_cand_list": [{"did": "9:1"}]}, "pos_cand_list", "list of did strings"),
        ({"neg_cand_list": "9:1"}, "neg_cand_list", "list of did strings"),
        ({"task_id": "0"}, "task_id", "must be an integer"),
        ({"task_id": 5}, "task_id", "unknown task id 5"),
        ({"query_modality": None}, "query_modality", "unknown modality None"),
    ],
)
def test_parse_query_rejects(change, field, fragment):
    rec = {"qid": "9:1", "query_txt": "t", "query_modality": "text", "pos_cand_list": ["9:1"], "task_id": 0}
    with pytest.raises(RowError) as info:
        parse_query({**rec, **change}, TASKS)
    assert info.value.field == field and fragment in info.value.reason


def test_parse_qrels_line():
    assert parse_qrels_line("9:6 0 9:2 1 3\n", TASKS) == ("9:6", "9:2", 1, 3)
    assert parse_qrels_line("9:6\t0\t9:2\t1\t3", TASKS) == ("9:6", "9:2", 1, 3)
    with pytest.raises(RowError, match="4 columns"):
        parse_qrels_line("9:6 0 9:2 1", TASKS)
    with pytest.raises(RowError, match="out of range"):
        parse_qrels_line("9:6 0 9:2 300 3", TASKS)


def test_parse_instruction_line():
    line = "text\timage\tVisualNews\t0\tIdentify it.\tDisplay it.\t\t\r\n"
    assert parse_instruction_line(line, {0}) == (
        0,
        "VisualNews",
        "text",
        "image",
        ["Identify it.", "Display it."],
    )
    with pytest.raises(RowError) as info:
        parse_instruction_line("text\timage\tX\t12\tp", {0})
    assert info.value.field == "dataset_id"
    with pytest.raises(RowError) as info:
        parse_instruction_line("text\timage\tX\t0\t\t", {0})
    assert info.value.field == "prompts"


def _candidate_variants() -> list:
    """Plain and odd records: the inline path of parse_candidate must agree with the checked one."""
    base = {"txt": "T.", "img_path": "mbeir_images/a/b.jpg", "modality": "image,text", "did": "1:2"}
    variants = [base, {**base, "src_content": '{"a": 1}'}, {**base, "src_content": ""}, [], "x", None]
    values = {
        "txt": [None, "", "null", "T.", 3, ["x"]],
        "img_path": [None, "", "null", "a.jpg", "./a.jpg", "a//b.jpg", "../a.jpg", "/a.jpg", "C:/a", "a/", 7],
        "modality": ["text", "image", "image,text", "video", None],
        "did": ["1:2", "", None, 12],
        "src_content": [None, "", "null", "{}", {"a": 1}],
    }
    for key, options in values.items():
        for value in options:
            for modality in ("text", "image", "image,text"):
                variants.append({**base, "modality": modality, key: value})
        variants.append({k: v for k, v in base.items() if k != key})
    return variants


def _outcome(fn, rec):
    try:
        return fn(rec)
    except RowError as e:
        return ("error", e.field, e.reason)


def test_parse_candidate_fast_path_equals_checked_path():
    from umarvel_cli.data.mbeir.records import parse_candidate_checked

    variants = _candidate_variants()
    assert len(variants) > 100
    for rec in variants:
        assert _outcome(parse_candidate, rec) == _outcome(parse_candidate_checked, rec), rec


def test_parse_json_line():
    from umarvel_cli.data.mbeir.records import parse_json_line

    assert parse_json_line(b'{"a": [1, "x"]}\n') == {"a": [1, "x"]}
    assert parse_json_line(b'{"a": 1}') == {"a": 1}
    assert parse_json_line(b'  {"a": 1}  \r\n') == {"a": 1}
    assert parse_json_line('{"t": "caf\u00e9"}\n'.encode()) == {"t": "caf\u00e9"}
    for bad in (b'{"a": 1}x\n', b'{"a": 1}x', b'{"a": 1', b"", b"\xff\xfe{}\n", b'{"a": 1} {"b": 2}\n'):
        with pytest.raises(RowError, match="malformed JSON line"):
            parse_json_line(bad)
