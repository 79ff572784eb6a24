"""Prompts from parts: a reranker pair (two images, generation prompt), a Qwen3-VL item (factor 32),
and an embedding item that renders and tokenises exactly as before the pipeline took parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models.tiny_models import TINY_BACKBONES, assert_positions_are_transformers, random_image
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.collator import Collator
from umarvel_cli.models.inputs.formatter import InputFormatter
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.inputs.prompt import ImagePart, Prompt, TextPart
from umarvel_cli.models.inputs.tokenizer import build_byte_tokenizer
from umarvel_cli.models.registry import get_family
from umarvel_cli.models.umarvel_config import UmarvelConfig

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
VISION = "<|vision_start|><|image_pad|><|vision_end|>"


def _formatter(family: str, **config) -> InputFormatter:
    fam = get_family(family)
    limits = {"min_pixels": fam.factor**2, "max_pixels": 16 * fam.factor**2}
    cfg = UmarvelConfig(family=family, **{**limits, **config})
    tok = build_byte_tokenizer((cfg.instruction_start, cfg.instruction_end, cfg.emb_token))
    return InputFormatter(tok, build_image_processor(fam, cfg.min_pixels, cfg.max_pixels), cfg)


def _runs(ids: np.ndarray, token: int) -> list[int]:
    """Lengths of the runs of `token` in `ids`, in order."""
    hit = np.concatenate([[0], (ids == token).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(hit))
    return (edges[1::2] - edges[::2]).tolist()


QUERY = Record("q", "a red bus", random_image(1, 90, 60), "find a similar picture")
CANDIDATE = Record("c", "a bus on a street", random_image(2, 40, 120))


def test_reranker_pair_with_two_images_ends_with_the_generation_prompt():
    f = _formatter("qwen2-vl")
    prompt = f.pair_prompt(QUERY, CANDIDATE, preamble="Does the candidate match? ")
    assert f.renderer.render(prompt) == (
        SYSTEM
        + "<|im_start|>user\nDoes the candidate match? Query:"
        + VISION
        + "Find a similar picture. A red bus.Candidate:"
        + VISION
        + "A bus on a street.<|im_end|>\n"
        + "<|im_start|>assistant\n"
    )  # one user turn; the instruction is plain text (no markers) in a pair
    (enc,) = f.encode_prompts([prompt])
    grids = [f.patcher.grid(*QUERY.image.size), f.patcher.grid(*CANDIDATE.image.size)]
    assert enc.grids == grids and grids[0] != grids[1]
    tokens = [t * h * w // 4 for t, h, w in grids]
    assert _runs(enc.input_ids, f.image_pad_id) == tokens  # two runs, query's first
    generation = f.tokenizer(f.tokens.generation_prompt(), add_special_tokens=False)["input_ids"]
    assert f.tokens.generation_prompt() == "<|im_start|>assistant\n"
    assert enc.input_ids[-len(generation) :].tolist() == generation
    assert enc.instruction_span is None
    for image, record in zip(enc.images, (QUERY, CANDIDATE), strict=True):
        np.testing.assert_array_equal(image.pixels, f.image_patches(record.image)[0])

    collate = Collator(f.tokenizer.pad_token_id, f.image_pad_id, patcher=f.patcher, mrope_merge_size=2)
    text_only = f.encode_many(
        [Record("t", "a longer text item so that the pair is not the longest one" * 4)], "query"
    )
    batch = collate([enc, *text_only])
    assert batch["image_grid_thw"].tolist() == [list(g) for g in grids]
    assert batch["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grids)
    assert int(batch["mm_token_type_ids"][0].sum()) == sum(tokens) and not batch["mm_token_type_ids"][1].any()
    pos = batch["position_ids"][:, 0, : enc.length]
    starts = np.flatnonzero(np.diff(np.concatenate([[0], enc.input_ids == f.image_pad_id])) == 1)
    for start, (_, h, w), n in zip(starts.tolist(), grids, tokens, strict=True):
        before = int(pos[0, start - 1])  # text counts up on all axes, each image starts one after it
        assert pos[:, start].tolist() == [before + 1] * 3
        assert (
            pos[1, start : start + n].max() == before + h // 2
            and pos[2, start : start + n].max() == before + w // 2
        )
        after = start + n  # the text after an image continues at start + max(rows, cols)
        assert pos[:, after].tolist() == [before + 1 + max(h, w) // 2] * 3
    deferred = f.encode_prompts([prompt], defer_pixels=True)
    lazy = f.encode_prompts([prompt], defer_decode=True)
    for other in (deferred, lazy):
        b = collate([*other, *text_only])
        assert all(torch.equal(batch[k], b[k]) for k in batch)


def test_pair_endings_and_one_sided_images():
    f = _formatter("qwen2-vl")
    text_query = Record("q2", "a red bus", None, "find it")
    train = f.pair_prompt(text_query, CANDIDATE, answer="Yes", generation_prompt=False)
    rendered = f.renderer.render(train)
    assert rendered.endswith("A bus on a street.<|im_end|>\n<|im_start|>assistant\nYes<|im_end|>\n")
    assert rendered.count("<|im_start|>user") == 1 and rendered.count(VISION) == 1
    (enc,) = f.encode_pairs([(text_query, CANDIDATE)], labels=None)
    assert _runs(enc.input_ids, f.image_pad_id) == [enc.images[0].num_patches // 4] and len(enc.images) == 1
    assert "Query:" not in f.tokenizer.decode(enc.input_ids)
    with pytest.raises(UmarvelError, match=r"empty input: no text and no image \(item bad\)"):
        f.encode_pairs([(text_query, Record("bad", "  "))])


def test_render_many_splices_several_texts_like_the_template():
    f = _formatter("qwen2-vl")
    prompts = [
        f.pair_prompt(QUERY, CANDIDATE),
        f.pair_prompt(Record("x", "ünïcödé {{ braces }}", None, "inst"), Record("y", "text", None)),
        f.pair_prompt(QUERY, CANDIDATE, answer="No", generation_prompt=False),
        Prompt("p", [TextPart("one"), ImagePart(QUERY.image), TextPart(""), TextPart("two")]),
        *f.item_prompts([QUERY, CANDIDATE], "query"),
    ]
    assert f.renderer.render_many(prompts) == [f.renderer.render(p) for p in prompts]
    assert all(frame is not None for frame in f.renderer._frames.values())


def test_a_placeholder_count_that_does_not_match_the_images_is_an_error():
    f = _formatter("qwen2-vl")
    prompt = Prompt("p", [ImagePart(QUERY.image), TextPart("see <|image_pad|> here")], answer="<emb>.")
    with pytest.raises(UmarvelError, match=r"2 image placeholders for 1 images \(item p\)"):
        f.encode_prompts([prompt])
    with pytest.raises(UmarvelError, match=r"an image part has no image \(item n\)"):
        f.encode_prompts([Prompt("n", [ImagePart(None), TextPart("words")])])


def test_qwen3_vl_item_uses_factor_32():
    fam = get_family("qwen3-vl")
    assert fam.factor == 32 and get_family("qwen2-vl").factor == 28
    cfg = UmarvelConfig(family="qwen3-vl")  # pixel limits from the family: 4..300 tokens of 32x32
    assert (cfg.min_pixels, cfg.max_pixels) == (4 * 32 * 32, 300 * 32 * 32)
    assert UmarvelConfig(family="qwen2-vl").max_pixels == 300 * 28 * 28  # unchanged for Qwen2-VL
    f = _formatter("qwen3-vl", min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    for w, h in [(300, 200), (97, 451), (2000, 1500), (5, 5)]:
        image = Image.fromarray(np.random.default_rng(w).integers(0, 255, (h, w, 3), dtype=np.uint8))
        (deferred,) = f.encode_many([Record("i", "a caption", image)], "candidate", defer_pixels=True)
        (eager,) = f.encode_many([Record("i", "a caption", image)], "candidate")
        resized = deferred.images[0].resized
        assert resized.shape[0] % 32 == 0 and resized.shape[1] % 32 == 0
        t, gh, gw = deferred.grids[0]
        assert (t, gh, gw) == (1, resized.shape[0] // 16, resized.shape[1] // 16) == eager.grids[0]
        n_tokens = gh * gw // 4
        assert _runs(eager.input_ids, f.image_pad_id) == [n_tokens]
        assert 4 <= n_tokens <= 300 and n_tokens * 32 * 32 <= cfg.max_pixels
        assert eager.images[0].pixels.shape == (gh * gw, 3 * 2 * 16 * 16)


def test_embedding_item_renders_and_tokenises_as_before():
    """The embedding layout from before prompts took parts: image first, instruction in markers,
    the assistant's `<emb>.` and no generation prompt; ids are the rendered string's, pad expanded."""
    f = _formatter("qwen2-vl", pool_tokens="content")
    (prompt,) = f.item_prompts([QUERY], "query")
    assert not prompt.generation_prompt and prompt.answer == "<emb>."
    expected = (
        SYSTEM
        + "<|im_start|>user\n"
        + VISION
        + "<instruction_start>Find a similar picture.<instruction_end> "
        "A red bus.<|im_end|>\n<|im_start|>assistant\n<emb>.<|im_end|>\n"
    )
    assert f.render(QUERY, "query") == expected
    (enc,) = f.encode_many([QUERY], "query")
    ids = f.tokenizer(expected, add_special_tokens=False)["input_ids"]
    p = ids.index(f.image_pad_id)
    n = enc.images[0].num_patches // 4
    assert enc.input_ids.tolist() == ids[:p] + [f.image_pad_id] * n + ids[p + 1 :]
    np.testing.assert_array_equal(enc.images[0].pixels, f.image_patches(QUERY.image)[0])
    s, e = enc.instruction_span
    assert (
        f.tokenizer.decode(enc.input_ids[s:e])
        == "<instruction_start>Find a similar picture.<instruction_end>"
    )
    begin, end = enc.content_span
    assert f.tokenizer.decode(enc.input_ids[begin:end]).startswith("<|vision_start|>")
    assert f.tokenizer.decode(enc.input_ids[end:]) == "<|im_end|>\n<|im_start|>assistant\n<emb>.<|im_end|>\n"


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_pair_positions_equal_get_rope_index(backbone, tiny_embedders):
    """Two images in one sequence: the collator's M-RoPE positions are transformers' (every family)."""
    emb = tiny_embedders[backbone]
    f = emb.formatter
    encoded = [
        *f.encode_pairs([(QUERY, CANDIDATE)]),
        *f.encode_many([Record("t", "only text " * 20)], "query"),
    ]
    batch = emb.collator(encoded)
    assert batch["image_grid_thw"].shape == (2, 3)
    assert_positions_are_transformers(emb, batch)
