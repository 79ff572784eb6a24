"""The formatter's batched paths equal the one-record reference: `render_many` (template applied once
per layout, text spliced in) equals `render`, `truncate_many` equals `truncate`, and `load_image`
returns the same pixels as `Image.open(...).convert("RGB")`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from umarvel_cli.data.formatter import InputFormatter, Record, load_image
from umarvel_cli.models.image_processor import build_image_processor
from umarvel_cli.models.registry import get_family
from umarvel_cli.models.tokenizer import build_byte_tokenizer
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
    assert f._frames and all(frame is not None for frame in f._frames.values())  # the splice was used
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
    assert any(frame is None for frame in f._frames.values())


def test_encode_many_equals_encode_one_at_a_time():
    f = _formatter(text_token_budget=24)
    many = f.encode_many(RECORDS, "query")
    for record, enc in zip(RECORDS, many, strict=True):
        one = f.encode(record, "query")
        assert np.array_equal(enc.input_ids, one.input_ids)
        assert enc.instruction_span == one.instruction_span
        assert enc.image_grid_thw == one.image_grid_thw


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
