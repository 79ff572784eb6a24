"""The demo's building blocks: attributes, drawing, texts, and the hard distractors of the builders."""

from __future__ import annotations

import io
import random

from PIL import Image

from umarvel_cli.data.demo import texts
from umarvel_cli.data.demo.build import DEMO_SIZES, build_demo
from umarvel_cli.data.demo.drawing import png_bytes, render
from umarvel_cli.data.demo.world import ATTRIBUTES, Item, Jitter, entity_catalog, mutate, near_entities
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec

SPEC = load_mbeir_spec()
RED_STAR = Item("star", "red", "striped", "large", "left", "sand")


def _differences(a: Item, b: Item) -> list[str]:
    return [attr for attr in ATTRIBUTES if getattr(a, attr) != getattr(b, attr)]


def test_mutate_changes_exactly_the_asked_attribute():
    rng = random.Random(0)
    for attr in ATTRIBUTES:
        for _ in range(20):
            changed = mutate(RED_STAR, attr, rng)
            assert _differences(RED_STAR, changed) == [attr]
            assert changed.visible


def test_png_is_deterministic_and_pixels_follow_the_attributes():
    assert png_bytes(RED_STAR, Jitter(1, -2, 5)) == png_bytes(RED_STAR, Jitter(1, -2, 5))
    assert png_bytes(RED_STAR, Jitter(1, -2, 5)) != png_bytes(RED_STAR, Jitter(0, 0, 0))
    with Image.open(io.BytesIO(png_bytes(RED_STAR))) as img:
        assert img.size == (56, 56) and img.mode == "RGB"
        assert not img.info  # no metadata chunks (no timestamps)
    solid_blue = render(Item("square", "blue", "solid", "large", "centre", "grey"))
    assert solid_blue.getpixel((28, 28)) == (35, 75, 220)  # the shape's colour at the centre
    assert solid_blue.getpixel((1, 28))[0] == solid_blue.getpixel((1, 28))[2]  # grey background
    small_left = render(Item("circle", "white", "solid", "small", "left", "night"))
    assert small_left.getpixel((15, 28)) == (245, 245, 245) and small_left.getpixel((41, 28)) != (
        245,
        245,
        245,
    )
    near_duplicates = {png_bytes(mutate(RED_STAR, attr, random.Random(1))) for attr in ATTRIBUTES}
    assert len(near_duplicates) == len(ATTRIBUTES)


def test_texts_mention_only_the_chosen_attributes():
    phrase = texts.noun_phrase(RED_STAR, ("shape", "colour", "position"))
    assert phrase == "a red star on the left"
    full = texts.noun_phrase(RED_STAR, ATTRIBUTES)
    assert full == "a large red striped star on the left on sand"
    assert texts.format_text(' "hello world" ') == "Hello world."
    rng = random.Random(0)
    captions = texts.everyday_captions(RED_STAR, 5, rng)
    assert len({c for c, _ in captions}) == 5
    for caption, mention in captions:
        assert len(mention) >= 4 and {"shape", "colour"} <= set(mention)
        assert "red star" in caption or "red striped star" in caption or "red plain star" in caption
        assert ("on sand" in caption) == ("background" in mention)
        assert ("large" in caption) == ("size" in mention)
    assert texts.product_text(RED_STAR) == "red striped oversized jacket"


def test_edit_texts_name_the_change():
    rng = random.Random(0)
    blue = RED_STAR.replace(colour="blue")
    assert "blue" in texts.edit_text(RED_STAR, blue, rng).lower()
    assert texts.fashion_edit(RED_STAR, blue, rng).startswith(("is blue", "has a blue"))
    moved = RED_STAR.replace(position="top")
    assert "near the top" in texts.edit_text(RED_STAR, moved, rng)


def test_entity_catalog_has_near_duplicate_siblings():
    catalog = entity_catalog(0, n_bases=4)
    assert len(catalog) == 12 and len({e.name for e in catalog}) == 12
    assert catalog == entity_catalog(0, n_bases=4)
    for entity in catalog:
        siblings = near_entities(entity, catalog)
        assert len(siblings) >= 2  # same shape and colour, other textures
        assert all(sum(a == b for a, b in zip(s.key, entity.key, strict=True)) == 2 for s in siblings)


def test_text_to_image_pools_hold_one_attribute_distractors_of_each_positive():
    data = build_demo(SPEC, 0, DEMO_SIZES["tiny"])
    build = data.build_for("visualnews_task0", "test")
    by_did = {c.did: c.image.item for c in build.pool}
    for q in build.queries["test"]:
        positive = by_did[q.pos[0]]
        hard = [
            item
            for did, item in by_did.items()
            if did not in q.pos and len(_differences(item, positive)) == 1
        ]
        assert hard, q.qid
    # composed queries: the target differs from the reference, which is itself in the pool
    cirr = data.build_for("cirr_task7", "test")
    pool_items = {c.did: c.image.item for c in cirr.pool}
    for q in cirr.queries["test"]:
        target = pool_items[q.pos[0]]
        assert _differences(q.image.item, target)
        assert q.image.item in pool_items.values()


def test_no_pool_candidate_that_a_text_describes_is_left_unlabeled():
    from umarvel_cli.data.demo.records import agrees

    data = build_demo(SPEC, 0, DEMO_SIZES["tiny"])
    checked = 0
    for stem in ("mscoco_task0", "edis_task2", "fashion200k_task0"):
        b = data.build_for(stem, "test")
        for q in b.queries["test"]:
            assert q.meaning is not None
            matching = {c.did for c in b.pool if agrees(c.image.item, q.meaning)}
            assert matching == set(q.pos), (stem, q.qid)
            checked += 1
    coco = data.build_for("mscoco_task3", "test")
    for q in coco.queries["test"]:
        assert {c.did for c in coco.pool if agrees(q.image.item, c.meaning)} == set(q.pos)
    assert checked == 3 * DEMO_SIZES["tiny"].test


def test_nights_like_distractors_share_the_query_rendering_and_the_positive_does_not():
    data = build_demo(SPEC, 0, DEMO_SIZES["tiny"])
    b = data.build_for("nights_task4", "test")
    pictures = {c.did: c.image for c in b.pool}
    for q in b.queries["test"]:
        positive = pictures[q.pos[0]]
        assert positive.item == q.image.item and positive.jitter != q.image.jitter
        hard = [p for p in pictures.values() if len(_differences(p.item, q.image.item)) == 1]
        # drawn for this query: same rendering, one of shape/colour/texture/size changed
        aligned = [p for p in hard if p.jitter == q.image.jitter]
        assert aligned, q.qid
        assert all(
            _differences(p.item, q.image.item)[0] in ("shape", "colour", "texture", "size") for p in aligned
        )


def test_the_small_size_builds_for_several_seeds():
    size = DEMO_SIZES["small"]
    for seed in (0, 1):
        data = build_demo(SPEC, seed, size)
        for b in data.builds:
            for split in b.splits:
                assert len(b.queries[split]) == size.queries(split), (seed, b.task.stem, split)


def test_text_questions_reword_the_look_the_articles_name():
    from umarvel_cli.data.demo import wiki
    from umarvel_cli.data.demo.texts import TEXTURE_WORDS

    rng = random.Random(0)
    for entity in entity_catalog(0, n_bases=6):
        question, _ = wiki.text_question(entity, rng)
        words = set(question.lower().rstrip("?").split())
        assert entity.shape in words
        assert entity.colour not in words and TEXTURE_WORDS[entity.texture] not in words
        assert all(entity.colour in fact and entity.shape in fact for fact in wiki.facts(entity))


def test_nli_rows_restate_the_anchor_and_contradict_one_attribute():
    from umarvel_cli.data.demo.corpora import nli_rows

    rows = nli_rows(random.Random(0), 400)
    assert rows == nli_rows(random.Random(0), 400)
    assert all(entail != contra for _, entail, contra in rows)
    anchors = [a for a, _, _ in rows]
    # the anchors speak in the voices of the M-BEIR tasks: captions, news, product lines, emblem looks
    assert any(a.startswith("An emblem showing") for a in anchors)
    assert any(a == a.lower() and not a.endswith(".") for a in anchors)  # product lines
    assert any(a.startswith(("Officials", "Crowds", "Visitors", "Workers")) for a in anchors)
    # a look in other words is restated in the articles' words ("scarlet ... bands" -> "striped red")
    looks = [
        (a, e, c)
        for a, e, c in rows
        if a.startswith("An emblem showing") and e.startswith("A ") and e.count(" ") == 3
    ]
    assert looks
    for anchor, entail, contra in looks:
        _, pattern, colour, shape = entail.rstrip(".").split(" ")
        assert shape in anchor and colour not in anchor.split()
        assert colour in {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"}
        assert sum(a != b for a, b in zip(entail.split(), contra.split(), strict=True)) == 1


def test_captions_describe_their_image_in_several_voices(tmp_path):
    import json

    from umarvel_cli.data.demo.corpora import write_corpora

    counts = write_corpora(tmp_path, seed=0, n_nli=4, n_captions=60)
    assert counts == {"nli": 4, "caption": 60}
    captions = [json.loads(line)["caption"] for line in (tmp_path / "pairs" / "captions.jsonl").open()]
    assert len(captions) == 60
    assert any(c == c.lower() for c in captions)  # product lines
    assert any(c.startswith("An emblem showing") for c in captions)
    assert any(c.startswith(("There is", "A picture", "A photo", "Someone")) for c in captions)
