"""The one input formatter: template, instruction markers, cleaning, truncation, images, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.formatter import InputFormatter
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.inputs.images import load_image
from umarvel_cli.models.inputs.text import format_string
from umarvel_cli.models.inputs.tokenizer import build_byte_tokenizer
from umarvel_cli.models.registry import get_family
from umarvel_cli.models.umarvel_config import UmarvelConfig

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


@pytest.fixture(scope="module")
def formatter() -> InputFormatter:
    cfg = UmarvelConfig(family="qwen2-vl", min_pixels=28 * 28, max_pixels=16 * 28 * 28, text_token_budget=40)
    tok = build_byte_tokenizer((cfg.instruction_start, cfg.instruction_end, cfg.emb_token))
    return InputFormatter(
        tok, build_image_processor(get_family("qwen2-vl"), cfg.min_pixels, cfg.max_pixels), cfg
    )


def test_format_string_is_unirs():
    assert format_string('  "a dog on grass"\r ') == "A dog on grass."
    assert format_string("is it red?") == "Is it red?"
    assert format_string("Stop!") == "Stop!"
    assert format_string("   ") == ""


def test_query_render_wraps_the_instruction_and_ends_with_the_assistant_turn(formatter):
    rec = Record("q", "a red bus", None, "find an image")
    assert formatter.render(rec, "query") == (
        SYSTEM + "<|im_start|>user\n<instruction_start>Find an image.<instruction_end> A red bus.<|im_end|>\n"
        "<|im_start|>assistant\n<emb>.<|im_end|>\n"
    )
    # candidates never carry an instruction; the template is the same for train and eval (no generation prompt)
    assert formatter.render(rec, "candidate") == (
        SYSTEM + "<|im_start|>user\nA red bus.<|im_end|>\n<|im_start|>assistant\n<emb>.<|im_end|>\n"
    )


def test_instruction_span_covers_the_markers(formatter):
    enc = formatter.encode(Record("q", "a red bus", None, "find"), "query")
    s, e = enc.instruction_span
    ids = enc.input_ids
    assert ids[s] == formatter.inst_start_id and ids[e - 1] == formatter.inst_end_id
    assert formatter.tokenizer.decode(ids[s:e]) == "<instruction_start>Find.<instruction_end>"
    assert formatter.encode(Record("c", "a red bus"), "candidate").instruction_span is None


def test_text_is_truncated_to_the_token_budget(formatter):
    long = "x" * 100
    assert formatter.truncate(long) == "x" * 40  # byte-level: one token per character
    enc_long = formatter.encode(Record("a", long), "candidate")
    enc_cut = formatter.encode(Record("b", "x" * 40), "candidate")
    assert np.array_equal(enc_long.input_ids, enc_cut.input_ids)


def test_image_tokens_are_expanded_and_pixels_bounded(formatter):
    img = Image.new("RGB", (300, 200), (200, 10, 10))
    enc = formatter.encode(Record("i", None, img), "candidate")
    (image,) = enc.images
    t, h, w = image.grid
    assert t == 1 and h * w * 14 * 14 <= 16 * 28 * 28 and h % 2 == 0 and w % 2 == 0
    assert image.pixels.shape == (t * h * w, 3 * 2 * 14 * 14)
    n_pad = int((enc.input_ids == formatter.image_pad_id).sum())
    assert n_pad == t * h * w // 4
    small = formatter.encode(Record("s", None, Image.new("RGB", (5, 5))), "candidate")
    assert small.grids == [(1, 2, 2)]  # raised to min_pixels
    text = formatter.tokenizer.decode(enc.input_ids)
    assert "<|vision_start|>" + "<|image_pad|>" * n_pad + "<|vision_end|>" in text


def test_modality_decides_what_is_used(formatter):
    img = Image.new("RGB", (56, 56))
    text_only = formatter.encode(Record("a", "words", img, modality="text"), "candidate")
    assert text_only.images == []
    both = formatter.encode(Record("b", "words", img), "candidate")
    assert both.images[0].pixels is not None and both.length > text_only.length


def test_compression_prompt_is_off_by_default_and_per_modality(formatter):
    assert formatter.config.compression_prompt is None
    cfg = UmarvelConfig(
        family="qwen2-vl", compression_prompt={"text": "\nSummarize above sentence in one word: "}
    )
    f2 = InputFormatter(formatter.tokenizer, formatter.image_processor, cfg)
    assert f2.user_text(Record("a", "hi"), "candidate") == "Hi.\nSummarize above sentence in one word: "


def test_bad_inputs_give_one_line_errors(formatter, tmp_path):
    with pytest.raises(UmarvelError, match=r"image file not found \(item x\)") as e:
        formatter.encode(Record("x", None, tmp_path / "nope.png"), "candidate")
    assert "nope.png" in str(e.value)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(UmarvelError, match=r"unreadable image \(item y\)"):
        load_image(bad, "y")
    with pytest.raises(UmarvelError, match="empty input: no text and no image"):
        formatter.encode(Record("z", "  "), "query")
    with pytest.raises(UmarvelError, match="unknown modality 'audio'"):
        formatter.encode(Record("w", "a", modality="audio"), "query")
    with pytest.raises(UmarvelError, match="modality video but no video path"):
        formatter.encode(Record("w", "a", modality="video"), "query")


def test_deferred_pixels_collate_to_the_same_batch(formatter):
    from umarvel_cli.models.inputs.collator import Collator

    recs = [
        Record("a", "x", Image.new("RGB", (90, 60), (1, 2, 3))),
        Record("b", "y"),
        Record("c", None, Image.new("RGB", (40, 70))),
    ]
    eager = formatter.encode_many(recs, "candidate")
    lazy = formatter.encode_many(recs, "candidate", defer_pixels=True)
    assert lazy[0].images[0].pixels is None and lazy[0].images[0].resized.dtype == np.uint8
    assert (
        lazy[0].images[0].resized.nbytes * 8 == eager[0].images[0].pixels.nbytes
    )  # float32 and 2 temporal copies
    assert [e.num_patches for e in lazy] == [e.num_patches for e in eager]
    collate = Collator(formatter.tokenizer.pad_token_id, formatter.image_pad_id, patcher=formatter.patcher)
    a, b = collate(eager), collate(lazy)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(ValueError, match="no patcher"):
        Collator(0, formatter.image_pad_id)(lazy)


def test_deferred_decoding_reads_headers_then_collates_to_the_same_batch(formatter, tmp_path):
    from umarvel_cli.models.inputs.collator import Collator

    Image.new("RGB", (90, 60), (1, 2, 3)).save(tmp_path / "a.png")
    recs = [
        Record("a", "x", tmp_path / "a.png"),
        Record("b", "y"),
        Record("c", None, Image.new("RGB", (40, 70), (9, 8, 7))),
    ]
    eager = formatter.encode_many(recs, "candidate")
    lazy = formatter.encode_many(recs, "candidate", defer_decode=True)
    (image,) = lazy[0].images
    assert image.resized is None and image.pixels is None and image.lazy.size == (90, 60)
    assert [e.input_ids.tolist() for e in lazy] == [e.input_ids.tolist() for e in eager]
    collate = Collator(formatter.tokenizer.pad_token_id, formatter.image_pad_id, patcher=formatter.patcher)
    a, b = collate(eager), collate(lazy)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    raw = Collator(
        formatter.tokenizer.pad_token_id, formatter.image_pad_id, patcher=formatter.patcher, raw_pixels=True
    )(lazy)
    assert raw["pixel_values"].dtype == torch.uint8 and raw["pixel_values"].shape[1] == 3 * 14 * 14
    mul, add = formatter.patcher.normalization
    first_frame = a["pixel_values"].reshape(-1, 3, 2, 14, 14)[:, :, 0]
    channel_first = raw["pixel_values"].reshape(-1, 14, 14, 3).permute(0, 3, 1, 2)  # pixel-major rows
    rebuilt = channel_first.float() * torch.from_numpy(mul)[:, None, None]
    torch.testing.assert_close(rebuilt + torch.from_numpy(add)[:, None, None], first_frame, atol=1e-6, rtol=0)
    for k in a.keys() - {"pixel_values"}:
        assert torch.equal(a[k], raw[k]), k
    # a batch holding precomputed (normalised) pixels stays normalised even in raw mode
    mixed = Collator(0, formatter.image_pad_id, patcher=formatter.patcher, raw_pixels=True)(eager)
    assert mixed["pixel_values"].dtype == torch.float32


def test_deferred_decoding_reports_missing_files_early_and_corrupt_bodies_when_collated(formatter, tmp_path):
    from umarvel_cli.models.inputs.collator import Collator

    with pytest.raises(UmarvelError, match=r"image file not found \(item m\)"):
        formatter.encode_many([Record("m", None, tmp_path / "missing.jpg")], "candidate", defer_decode=True)
    (tmp_path / "garbage.jpg").write_bytes(b"garbage")
    with pytest.raises(UmarvelError, match=r"unreadable image \(item g\)"):
        formatter.encode_many([Record("g", None, tmp_path / "garbage.jpg")], "candidate", defer_decode=True)
    good = tmp_path / "good.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # the header reads, the body does not decode
    lazy = formatter.encode_many([Record("t", None, truncated)], "candidate", defer_decode=True)
    with pytest.raises(UmarvelError, match=r"unreadable image \(item t\)"):
        Collator(0, formatter.image_pad_id, patcher=formatter.patcher)(lazy)


@pytest.fixture(scope="module")
def content_formatter(formatter) -> InputFormatter:
    cfg = UmarvelConfig(**{**formatter.config.to_dict(), "pool_tokens": "content"})
    return InputFormatter(formatter.tokenizer, formatter.image_processor, cfg)


def _pooled_ids(formatter: InputFormatter, records: list[Record], role: str) -> list[list[int]]:
    from umarvel_cli.models.inputs.collator import Collator

    batch = Collator(formatter.tokenizer.pad_token_id, formatter.image_pad_id)(
        formatter.encode_many(records, role)
    )
    return [ids[mask].tolist() for ids, mask in zip(batch["input_ids"], batch["pool_mask"], strict=True)]


def test_content_pooling_covers_exactly_the_image_and_text_tokens(content_formatter):
    f = content_formatter
    tok = f.tokenizer
    img = Image.new("RGB", (56, 56), (9, 9, 9))
    recs = [Record("q", "a red bus", img, "find an image"), Record("c", "a red bus"), Record("i", None, img)]
    pooled = _pooled_ids(f, recs, "query")
    text = tok("A red bus.", add_special_tokens=False)["input_ids"]
    n_img = 56 * 56 // (28 * 28)
    vision = (
        [tok.convert_tokens_to_ids("<|vision_start|>")]
        + [f.image_pad_id] * n_img
        + [tok.convert_tokens_to_ids("<|vision_end|>")]
    )
    space = tok(" ", add_special_tokens=False)["input_ids"]
    assert pooled[0] == vision + space + text  # instruction span out, the space after it stays
    assert pooled[1] == text
    assert pooled[2] == vision
    template = {tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>", "<emb>")}
    for p in pooled:
        assert not template & set(p) and f.inst_start_id not in p and f.inst_end_id not in p
        assert tok.pad_token_id not in p


def test_all_pooling_is_unchanged_and_sets_no_content_span(formatter, content_formatter):
    recs = [Record("q", "a red bus", Image.new("RGB", (56, 56)), "find"), Record("c", "words")]
    plain = formatter.encode_many(recs, "query")
    assert all(e.content_span is None for e in plain)
    content = content_formatter.encode_many(recs, "query")
    for a, b in zip(plain, content, strict=True):
        assert np.array_equal(a.input_ids, b.input_ids) and a.instruction_span == b.instruction_span
    pooled = _pooled_ids(formatter, recs, "query")
    full = formatter.encode(recs[1], "query").input_ids.tolist()
    assert pooled[1] == full  # "all": every non-pad token of a record without instruction
    assert formatter.tokenizer.decode(pooled[0]).startswith(SYSTEM)


def test_pool_instruction_pools_the_instruction_span_too(content_formatter):
    """umarvel.json `pool_instruction: true` (the demo's ablation): the instruction and its markers are
    pooled with the content; the default masks them (above)."""
    from dataclasses import replace

    f = content_formatter
    pooled = InputFormatter(f.tokenizer, f.image_processor, replace(f.config, pool_instruction=True))
    rec = Record("q", "a red bus", None, "find an image")
    masked, with_instruction = _pooled_ids(f, [rec], "query")[0], _pooled_ids(pooled, [rec], "query")[0]
    decoded = f.tokenizer.decode(with_instruction)
    assert decoded.startswith("<instruction_start>Find an image.<instruction_end>")
    assert with_instruction[-len(masked) :] == masked and len(with_instruction) > len(masked)
