"""The two progressive-stage corpora of the demo: NLI text triplets and caption→image pairs.

`pairs/nli.csv` has SimCSE's header (sent0, sent1, hard_neg): anchor, entailment, contradiction;
the entailment restates some of the anchor's attributes in other words, the contradiction changes
one of them. Captions are written in the voices of the M-BEIR tasks (see `describe`). `pairs/captions.jsonl` holds
`{"image": relpath, "caption": ...}` with images under `pairs/images/`, paths relative to `pairs/`.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from umarvel_cli.data.demo import texts, wiki
from umarvel_cli.data.demo.drawing import write_png
from umarvel_cli.data.demo.world import ATTRIBUTES, Item, Jitter, mutate, random_item

PAIRS_DIR = "pairs"
NLI_FILE = "nli.csv"
CAPTIONS_FILE = "captions.jsonl"
NLI_HEADER = ("sent0", "sent1", "hard_neg")

# How a statement about an item can be worded: the voices of the demo's M-BEIR datasets (everyday
# captions, news captions, product lines, encyclopedia looks with other colour and pattern words).
# The corpora speak about the same world in the same voices, as real NLI and CC3M speak the language
# of real M-BEIR, so text-text and image-text pretraining transfer to the retrieval tasks.
_CLAIMS = (
    "There is {np}.",
    "The picture shows {np}.",
    "{np} can be seen.",
    "It is {np}.",
    "This is {np}.",
    "headline",  # "Red striped star draws crowds." (the news headlines' voice)
)


def describe(item: Item, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """A text about `item` in a random voice, and the attributes it states."""
    voice = rng.random()
    if voice < 0.35:
        mention = texts.pick_mention(rng, 4, always=texts.EVERYDAY_ALWAYS)
        return texts.everyday_caption(item, mention, rng), mention
    if voice < 0.6:
        mention = texts.pick_mention(rng, 4, always=texts.EVERYDAY_ALWAYS)
        return texts.news_caption(item, mention, rng), mention
    if voice < 0.8:
        return texts.product_text(item), texts.FASHION_ATTRIBUTES
    mention = ("shape", "colour", "texture")
    return texts.format_text(f"An emblem showing {wiki.reworded_look(item, rng)}"), mention


def claim(item: Item, mention: tuple[str, ...], template: str) -> str:
    """A short statement of some attributes: in plain words, as the look, or as a product."""
    if template == "look":
        return texts.format_text(f"A {wiki.look(item)}")
    if template == "headline":
        return texts.format_text(f"{texts.noun_phrase(item, mention, article=False)} draws crowds")
    if template == "product":
        words = {
            "size": texts.FITS[item.size],
            "colour": item.colour,
            "texture": texts.PATTERNS[item.texture],
            "shape": texts.GARMENTS[item.shape],
        }
        garment = " ".join(words[a] for a in ("size", "colour", "texture", "shape") if a in mention)
        if "shape" not in mention:
            return texts.format_text(f"The item is {garment}")
        return texts.format_text(f"It is {'an' if garment[0] in 'aeiou' else 'a'} {garment}")
    return texts.format_text(template.format(np=texts.noun_phrase(item, mention)))


def nli_rows(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """Anchor in one voice; entailment restating some of its attributes in other words; contradiction
    the same statement with one of those attributes changed."""
    rows = []
    for _ in range(n):
        item = random_item(rng)
        anchor, stated = describe(item, rng)
        if stated == ("shape", "colour", "texture") and rng.random() < 0.5:
            template, kept = "look", stated  # "a scarlet star with diagonal bands" -> "a striped red star"
        else:
            template = "product" if stated == texts.FASHION_ATTRIBUTES else rng.choice(_CLAIMS)
            k = rng.randint(1, min(3, len(stated)))
            picked = set(rng.sample(stated, k))
            kept = tuple(a for a in ATTRIBUTES if a in picked)
        entail = claim(item, kept, template)
        wrong = mutate(item, rng.choice(kept), rng)
        contra = claim(wrong, kept, template)
        rows.append((anchor, entail, contra))
    return rows


def write_corpora(root: Path, seed: int, n_nli: int, n_captions: int) -> dict[str, int]:
    rng = random.Random(f"demo-pairs:{seed}")
    out = root / PAIRS_DIR
    out.mkdir(parents=True, exist_ok=True)
    with open(out / NLI_FILE, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(NLI_HEADER)
        writer.writerows(nli_rows(rng, n_nli))
    seen = set()
    with open(out / CAPTIONS_FILE, "w", encoding="utf-8", newline="\n") as fh:
        for n in range(1, n_captions + 1):
            item = random_item(rng)
            while item in seen:
                item = random_item(rng)
            seen.add(item)
            rel = f"images/cc_{n:06d}.png"
            write_png(out / rel, item, Jitter.draw(rng))
            caption = describe(item, rng)[0]
            fh.write(json.dumps({"image": rel, "caption": caption}, ensure_ascii=False) + "\n")
    return {"nli": n_nli, "caption": n_captions}
