"""`prepare_pairs`: NLI csv and caption corpora (jsonl, JSON list, CC3M train_anno.json) → pairs table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.artifacts.shards import list_shards, read_table
from umarvel_cli.data import pairs as pairs_module
from umarvel_cli.data.pairs import prepare_pairs
from umarvel_cli.errors import UmarvelError


def _rows(out: Path) -> list[dict]:
    return read_table(out, "pairs").to_pylist()


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def _images(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\x89PNG fake")


# --- round trips ----------------------------------------------------------------------------------


def test_demo_nli_csv_round_trips(demo_root, tmp_path):
    source = demo_root / "pairs" / "nli.csv"
    manifest = prepare_pairs(source, tmp_path / "out", "nli")
    expected = list(csv.reader(source.open()))[1:]
    rows = _rows(tmp_path / "out")
    assert [(r["query_text"], r["pos_text"], r["neg_text"]) for r in rows] == [tuple(e) for e in expected]
    assert rows[0]["pair_id"] == "nli:1" and rows[-1]["pair_id"] == f"nli:{len(expected)}"
    assert {r["kind"] for r in rows} == {"nli"}
    assert all(r["query_image"] is None and r["pos_image"] is None for r in rows)
    assert manifest.counts == {"pairs": len(expected), "rejected": 0}
    assert manifest.extra["format"] == "nli-csv" and manifest.extra["images_root"] is None


def test_demo_caption_jsonl_round_trips_with_images_relative_to_its_folder(demo_root, tmp_path):
    source = demo_root / "pairs" / "captions.jsonl"
    manifest = prepare_pairs(source, tmp_path / "out", "caption")
    expected = [json.loads(line) for line in source.read_text().splitlines()]
    rows = _rows(tmp_path / "out")
    assert [(r["query_text"], r["pos_image"]) for r in rows] == [(e["caption"], e["image"]) for e in expected]
    assert all(r["pos_text"] is None and r["neg_text"] is None for r in rows)
    root = Path(manifest.extra["images_root"])
    assert root == (demo_root / "pairs").resolve()
    assert all((root / r["pos_image"]).is_file() for r in rows)


def test_real_simcse_csv_variants(tmp_path):
    # SimCSE's file: quoted commas and newlines inside fields; a BOM; and the two-column unsupervised form
    text = '\ufeffsent0,sent1,hard_neg\n"A man, smiling.","A person\nsmiles.",Nobody smiles.\nA,B,\n'
    (tmp_path / "nli_for_simcse.csv").write_text(text, encoding="utf-8")
    prepare_pairs(tmp_path / "nli_for_simcse.csv", tmp_path / "a", "nli")
    rows = _rows(tmp_path / "a")
    assert [(r["query_text"], r["pos_text"], r["neg_text"]) for r in rows] == [
        ("A man, smiling.", "A person\nsmiles.", "Nobody smiles."),
        ("A", "B", None),
    ]
    _write_csv(tmp_path / "two.csv", [["sent1", "sent0"], ["pos", "anchor"]])
    prepare_pairs(tmp_path / "two.csv", tmp_path / "b", "nli")
    assert [(r["query_text"], r["pos_text"], r["neg_text"]) for r in _rows(tmp_path / "b")] == [
        ("anchor", "pos", None)
    ]


def test_cc3m_style_inputs(tmp_path):
    images = tmp_path / "images"
    _images(images, ["GCC_train_000.jpg", "sub/GCC_train_001.jpg"])
    jsonl = tmp_path / "cc3m.jsonl"
    jsonl.write_text(
        json.dumps({"id": "a1", "image_path": "GCC_train_000.jpg", "text": "a dog"})
        + "\n\n"
        + json.dumps({"image": "sub/GCC_train_001.jpg", "caption": " a cat "})
        + "\n"
    )
    prepare_pairs(jsonl, tmp_path / "j", "caption", images_root=images)
    assert [(r["pair_id"], r["query_text"], r["pos_image"]) for r in _rows(tmp_path / "j")] == [
        ("a1", "a dog", "GCC_train_000.jpg"),
        ("cc3m:3", "a cat", "sub/GCC_train_001.jpg"),
    ]
    # U-MARVEL's train_anno.json: absolute h5v paths under the images root become relative
    anno = {
        "GCC_train_000": {"h5v": str(images / "GCC_train_000.jpg"), "h5a": "none.hdf5", "text": "",
                          "instruct_ans": ["a dog on grass"]},
        "GCC_train_001": {"h5v": "sub/GCC_train_001.jpg", "instruct_ans": ["a cat", "ignored"]},
    }  # fmt: skip
    (tmp_path / "train_anno.json").write_text(json.dumps(anno))
    manifest = prepare_pairs(tmp_path / "train_anno.json", tmp_path / "a", "caption", images_root=images)
    assert [(r["pair_id"], r["query_text"], r["pos_image"]) for r in _rows(tmp_path / "a")] == [
        ("GCC_train_000", "a dog on grass", "GCC_train_000.jpg"),
        ("GCC_train_001", "a cat", "sub/GCC_train_001.jpg"),
    ]
    assert manifest.extra == {
        "images_root": str(images.resolve()),
        "kind": "caption",
        "format": "caption-json",
    }


# --- bad input ------------------------------------------------------------------------------------

NLI_HEADER = ["sent0", "sent1", "hard_neg"]
BAD_NLI = [
    # (rows after the header, line, field, message fragment)
    ([["a", "b", "c"], ["a", "", "c"]], 3, "sent1", "empty or missing text"),
    ([["a", "b", "c"], ["a", "b"]], 3, None, "expected 3 columns, found 2"),
    ([["", "b", "c"]], 2, "sent0", "empty or missing text"),
]


@pytest.mark.parametrize(("rows", "line", "field", "fragment"), BAD_NLI)
def test_bad_nli_rows_fail_naming_file_line_and_field(tmp_path, rows, line, field, fragment):
    source = _write_csv(tmp_path / "nli.csv", [NLI_HEADER, *rows])
    with pytest.raises(UmarvelError) as err:
        prepare_pairs(source, tmp_path / "out", "nli")
    e = err.value
    assert (e.file, e.line, e.field) == (str(source), line, field)
    assert fragment in e.message
    assert read_manifest(tmp_path / "out") is None  # nothing half-written passes for finished


def test_nli_without_the_simcse_header_is_refused(tmp_path):
    source = _write_csv(tmp_path / "nli.csv", [["premise", "hypothesis"], ["a", "b"]])
    with pytest.raises(UmarvelError, match="sent0,sent1") as err:
        prepare_pairs(source, tmp_path / "out", "nli")
    assert (err.value.line, err.value.field) == (1, "header")


BAD_CAPTIONS = [
    # (jsonl line, field, message fragment)
    ('{"image": "ok.png", "caption": "x"', None, "malformed JSON line"),
    ('{"caption": "x"}', "image", "missing field"),
    ('{"image": "ok.png"}', "caption", "missing field"),
    ('{"image": "ok.png", "caption": ""}', "caption", "empty or missing text"),
    ('{"image": "ok.png", "caption": 3}', "caption", "expected a string"),
    (
        '{"image": "ok.png", "conversations": [{"from": "human", "value": "x"}]}',
        "conversations",
        "no gpt turn",
    ),
    ('{"image": "../secret.png", "caption": "x"}', "image", "escapes the images root"),
    ('{"image": "/etc/passwd", "caption": "x"}', "image", "not under the images root"),
    ('{"image": "gone.png", "caption": "x"}', "image", "not found under the images root"),
    ('["image", "caption"]', None, "expected a JSON object"),
    ('{"id": "dup", "image": "ok.png", "caption": "x"}', "id", "duplicate pair id"),
]


@pytest.mark.parametrize(("bad", "field", "fragment"), BAD_CAPTIONS)
def test_bad_caption_rows_fail_naming_file_line_and_field(tmp_path, bad, field, fragment):
    _images(tmp_path, ["ok.png"])
    source = tmp_path / "caps.jsonl"
    source.write_text(json.dumps({"id": "dup", "image": "ok.png", "caption": "fine"}) + "\n" + bad + "\n")
    with pytest.raises(UmarvelError) as err:
        prepare_pairs(source, tmp_path / "out", "caption")
    e = err.value
    assert (e.file, e.line, e.field) == (str(source), 2, field)
    assert fragment in e.message


def test_bad_train_anno_entry_names_the_entry_and_field(tmp_path):
    _images(tmp_path, ["a.jpg"])
    anno = {"GCC_train_0": {"h5v": "a.jpg", "instruct_ans": ["ok"]}, "GCC_train_1": {"h5v": "a.jpg"}}
    (tmp_path / "train_anno.json").write_text(json.dumps(anno))
    with pytest.raises(UmarvelError) as err:
        prepare_pairs(tmp_path / "train_anno.json", tmp_path / "out", "caption")
    assert (err.value.line, err.value.field) == (2, "GCC_train_1.instruct_ans")


def test_skip_counts_bad_rows_and_lists_them_in_rejected_jsonl(tmp_path):
    _images(tmp_path, ["ok.png"])
    good = json.dumps({"image": "ok.png", "caption": "fine"})
    lines = [good, '{"image": "../x.png", "caption": "x"}', good, "{broken", good]
    source = tmp_path / "caps.jsonl"
    source.write_text("\n".join(lines) + "\n")
    manifest = prepare_pairs(source, tmp_path / "out", "caption", on_error="skip")
    assert manifest.counts == {"pairs": 3, "rejected": 2}
    assert [r["pair_id"] for r in _rows(tmp_path / "out")] == ["caps:1", "caps:3", "caps:5"]
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"], r["field"]) for r in rejected] == [
        (str(source), 2, "image"),
        (str(source), 4, None),
    ]


def test_unknown_kind_and_missing_input_are_refused(tmp_path):
    with pytest.raises(UmarvelError, match="unknown kind"):
        prepare_pairs(tmp_path / "x.csv", tmp_path / "out", "video")
    with pytest.raises(UmarvelError, match="does not exist") as err:
        prepare_pairs(tmp_path / "x.csv", tmp_path / "out", "nli")
    assert err.value.field == "--input"


# --- stage lifecycle ------------------------------------------------------------------------------


def test_second_run_is_up_to_date_and_force_redoes(demo_root, tmp_path):
    source = demo_root / "pairs" / "nli.csv"
    first = prepare_pairs(source, tmp_path / "out", "nli")
    second = prepare_pairs(source, tmp_path / "out", "nli")
    assert second.created == first.created and second.counts == first.counts
    redone = prepare_pairs(source, tmp_path / "out", "nli", force=True)
    assert redone.counts == first.counts


def test_an_interrupted_run_resumes_to_the_same_table(tmp_path, monkeypatch):
    rows = [NLI_HEADER] + [[f"anchor {n}", f"entails {n}", f"contradicts {n}"] for n in range(6000)]
    source = _write_csv(tmp_path / "nli.csv", rows)
    prepare_pairs(source, tmp_path / "clean", "nli", rows_per_shard=1000)
    real = pairs_module.read_pairs

    def dying(*args):
        fmt, items = real(*args)

        def gen():
            for n, item in enumerate(items):
                if n == 5000:
                    raise KeyboardInterrupt
                yield item

        return fmt, gen()

    monkeypatch.setattr(pairs_module, "read_pairs", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_pairs(source, tmp_path / "out", "nli", rows_per_shard=1000)
    done = list_shards(tmp_path / "out", "pairs")
    assert 1 <= len(done) <= 5 and read_manifest(tmp_path / "out") is None
    stamps = [p.stat().st_mtime_ns for p in done]
    monkeypatch.setattr(pairs_module, "read_pairs", real)
    manifest = prepare_pairs(source, tmp_path / "out", "nli", rows_per_shard=1000)
    assert manifest.counts["pairs"] == 6000
    assert [p.stat().st_mtime_ns for p in done] == stamps  # completed shards were kept, not rewritten
    assert len(list_shards(tmp_path / "out", "pairs")) == 6
    assert _rows(tmp_path / "out") == _rows(tmp_path / "clean")
