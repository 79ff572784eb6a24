"""The formatter's batched paths equal the one-record reference: `render_many` (template applied once
per layout, text spliced in) equals `render`, `truncate_many` equals `truncate`, `load_image`
returns the same pixels as `Image.open(...).convert("RGB")`, and images decoded ahead are the
collator's own pixels."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.formatter import InputFormatter
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.inputs.images import load_image
from umarvel_cli.models.inputs.tokenizer import build_byte_tokenizer
from umarvel_cli.models.registry import get_family
from umarvel_cli.models.umarvel_config import UmarvelConfig


def _formatter(**config) -> InputFormatter:
    cfg = UmarvelConfig(family="qwen2-vl", min_pixels=28 * 28, max_pixels=16 * 28 * 28, **config)
    tok = build_byte_tokenizer((cfg.instruction_start, cfg.instruction_end, cfg.emb_token))
    return InputFormatter(
        tok, build_image_processor(get_family("qwen2-vl"), cfg.min_pixels, cfg.max_pixels), cfg
    )


IMAGE = Image.new("RGB", (56, 84), (10, 200, 30))
RECORDS = [
    Record("a", "a red bus"),
    Record("b", None, IMAGE),
    Record("c", "caption of the image", IMAGE),
    Record("d", "  text {{ braces }} {% raw %} and\nnewlines\r\n ", None, "find it"),
    Record("e", "x" * 300, None, "a long one"),  # truncated to the budget
    Record("f", "an image query", IMAGE, "find the image"),
    Record("g", "ignored words", IMAGE, modality="image"),
    Record("h", "words only", IMAGE, modality="text"),
    Record("i", "\ue000umarvel probe\ue001 inside the text"),
    Record("j", "ünïcödé — 文字 <|im_end|> tokens"),
]


@pytest.mark.parametrize("role", ["query", "candidate"])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"text_token_budget": 20},
        {"compression_prompt": {"text": "\nIn one word: ", "image": "\nImage: "}},
    ],
)
def test_render_many_equals_render_per_record(role, config):
    f = _formatter(**config)
    got = f.render_many(RECORDS, role)
    assert got == [f.render(r, role) for r in RECORDS]
    assert f.renderer._frames and all(
        frame is not None for frame in f.renderer._frames.values()
    )  # the splice was used
    assert f.truncate_many([r.text or "" for r in RECORDS]) == [f.truncate(r.text or "") for r in RECORDS]


def test_render_many_falls_back_to_the_template_when_it_changes_the_text():
    f = _formatter()
    # a template that does not copy the text verbatim: the splice must not be used
    f.tokenizer.chat_template = f.tokenizer.chat_template.replace(
        "{{ content['text'] }}", "{{ content['text'] | upper }}"
    )
    got = f.render_many(RECORDS, "query")
    assert got == [f.render(r, "query") for r in RECORDS]
    assert "A RED BUS." in got[0]
    assert any(frame is None for frame in f.renderer._frames.values())


def test_encode_many_equals_encode_one_at_a_time():
    f = _formatter(text_token_budget=24)
    many = f.encode_many(RECORDS, "query")
    for record, enc in zip(RECORDS, many, strict=True):
        one = f.encode(record, "query")
        assert np.array_equal(enc.input_ids, one.input_ids)
        assert enc.instruction_span == one.instruction_span
        assert enc.grids == one.grids


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "CMYK"])
def test_load_image_equals_open_and_convert(tmp_path, mode):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / ("x.jpg" if mode in ("RGB", "L", "CMYK") else "x.png")
    img.save(path)
    got = load_image(path, "x")
    assert got.mode == "RGB" and got.size == (40, 30)
    with Image.open(path) as ref:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(ref.convert("RGB")))


def _jpegs(folder, sizes) -> list:
    rng = np.random.default_rng(2)
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def test_decode_ahead_gives_the_pixels_the_collator_would_decode(tmp_path):
    from umarvel_cli.models.inputs.collator import Collator

    f = _formatter()
    paths = _jpegs(tmp_path, [(64, 64), (120, 90), (33, 200), (90, 60), (150, 150)])
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(
        paths[1].read_bytes()[: paths[1].stat().st_size // 2]
    )  # the header reads, the body does not decode
    records = [
        Record("a", "text only"),
        Record("b", None, paths[0]),
        Record("c", "words", paths[1], modality="text"),  # image not used: never decoded
        Record("t", None, truncated),
        Record("d", "caption", paths[2]),
        Record("e", None, paths[3]),
        Record("f", None, paths[4]),
    ]
    plain = f.encode_many(records, "candidate", defer_decode=True)
    ahead = f.encode_many(records, "candidate", defer_decode=True, decode_ahead=4)
    assert [e.input_ids.tolist() for e in ahead] == [e.input_ids.tolist() for e in plain]
    assert all(im.resized is None for e in plain for im in e.images)
    # the first 4 image records (b, t, d, e) are tried; the broken one is left for the collator
    resized = [e.images[0].resized if e.images else None for e in ahead]
    decoded = [r.id for r, im in zip(records, resized, strict=True) if im is not None]
    assert set(decoded) <= {"b", "d", "e"} and resized[6] is None and resized[3] is None
    for r, im in zip(records, resized, strict=True):
        if im is not None:
            np.testing.assert_array_equal(im, f.patcher.resize(load_image(r.image)))
    good = [i for i in range(len(records)) if i != 3]
    collate = Collator(f.tokenizer.pad_token_id, f.image_pad_id, patcher=f.patcher, raw_pixels=True)
    a, b = collate([plain[i] for i in good]), collate([ahead[i] for i in good])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UmarvelError, match=r"unreadable image \(item t\)"):
        collate([ahead[3]])


def test_decode_ahead_stops_when_formatting_fails(tmp_path):
    f = _formatter()
    paths = _jpegs(tmp_path, [(64, 64)] * 3)
    records = [Record(str(i), None, p) for i, p in enumerate(paths)] + [Record("bad", "  ")]
    with pytest.raises(UmarvelError, match=r"empty input: no text and no image \(item bad\)"):
        f.encode_many(records, "candidate", defer_decode=True, decode_ahead=8)
    assert not [t for t in threading.enumerate() if t.name == "umarvel-decode-ahead"]
