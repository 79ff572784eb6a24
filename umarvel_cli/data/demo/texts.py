"""Texts written from item attributes, in the voice of each domain (news, everyday, fashion).

A text mentions a chosen subset of attributes; distractors change a mentioned one, so the text
alone decides which image matches, and unmentioned attributes may vary among the positives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from umarvel_cli.data.demo.world import ATTRIBUTES, Item

TEXTURE_WORDS = {"solid": "plain", "striped": "striped", "dotted": "dotted", "checkered": "checkered"}
POSITION_WORDS = {
    "centre": "in the middle",
    "left": "on the left",
    "right": "on the right",
    "top": "near the top",
    "bottom": "near the bottom",
}
BACKGROUND_WORDS = {
    "grey": "on a grey background",
    "sand": "on sand",
    "night": "against a night sky",
    "sky": "against a blue sky",
}


def format_text(text: str) -> str:
    """UniIR's `format_string`: strip, capitalise the first letter, end with a full stop."""
    text = text.strip().replace("\r", "").strip('"')
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


def noun_phrase(item: Item, mention: Sequence[str], article: bool = True) -> str:
    """'a large red striped star on the left against a night sky', keeping only `mention`."""
    words = []
    if "size" in mention:
        words.append(item.size)
    if "colour" in mention:
        words.append(item.colour)
    if "texture" in mention:
        words.append(TEXTURE_WORDS[item.texture])
    words.append(item.shape if "shape" in mention else "shape")
    phrase = " ".join(words)
    if article:
        phrase = ("an " if phrase[0] in "aeiou" else "a ") + phrase
    if "position" in mention:
        phrase += " " + POSITION_WORDS[item.position]
    if "background" in mention:
        phrase += " " + BACKGROUND_WORDS[item.background]
    return phrase


def pick_mention(rng: random.Random, at_least: int, always: Sequence[str] = ("shape",)) -> tuple[str, ...]:
    """A random subset of attributes (in canonical order) with at least `at_least` of them."""
    rest = [a for a in ATTRIBUTES if a not in always]
    chosen = set(always) | set(rng.sample(rest, max(0, at_least - len(always))))
    chosen |= {a for a in rest if rng.random() < 0.25}
    return tuple(a for a in ATTRIBUTES if a in chosen)


# --- everyday scenes (MSCOCO, NIGHTS, CIRR) -------------------------------------------------------

EVERYDAY_ALWAYS = ("shape", "colour")  # what a caption of an everyday scene always says
_EVERYDAY = ("{np}.", "There is {np}.", "A picture of {np}.", "Someone drew {np}.", "A photo showing {np}.")


def everyday_caption(item: Item, mention: Sequence[str], rng: random.Random) -> str:
    return format_text(rng.choice(_EVERYDAY).format(np=noun_phrase(item, mention)))


def everyday_captions(item: Item, k: int, rng: random.Random) -> list[tuple[str, tuple[str, ...]]]:
    """k different captions of one image, each mentioning at least four attributes, with what they mention."""
    out: dict[str, tuple[str, ...]] = {}
    for _ in range(20 * k):
        mention = pick_mention(rng, 4, always=EVERYDAY_ALWAYS)
        out.setdefault(everyday_caption(item, mention, rng), mention)
        if len(out) == k:
            break
    return list(out.items())


_EDITS = {
    "colour": ("make it {v}", "change the colour to {v}", "paint it {v}"),
    "shape": ("turn it into a {v}", "replace the shape with a {v}"),
    "texture": ("make the pattern {w}", "give it a {w} surface"),
    "size": ("make it {v}", "change it to a {v} one"),
    "position": ("move it {w}", "shift it {w}"),
    "background": ("put it {w}", "show it {w} instead"),
}


def edit_text(before: Item, after: Item, rng: random.Random) -> str:
    """A composed-retrieval instruction that turns `before` into `after` ('make it blue')."""
    parts = []
    for attr in ATTRIBUTES:
        value = getattr(after, attr)
        if getattr(before, attr) == value:
            continue
        word = {
            "texture": TEXTURE_WORDS.get(value, value),
            "position": POSITION_WORDS.get(value, value),
            "background": BACKGROUND_WORDS.get(value, value),
        }.get(attr, value)
        parts.append(rng.choice(_EDITS[attr]).format(v=value, w=word))
    return format_text(" and ".join(parts))


# --- news (VisualNews, EDIS) ----------------------------------------------------------------------

_EVENTS = (
    "Officials unveil",
    "Crowds gather around",
    "Protesters carry",
    "A museum displays",
    "Workers install",
    "Visitors photograph",
    "Fans wave",
    "Students paint",
)
_WHEN = (
    "at the city festival",
    "during the summer parade",
    "outside the town hall on Monday",
    "at the opening ceremony",
    "before the final match",
    "in the old harbour",
)


def news_caption(item: Item, mention: Sequence[str], rng: random.Random) -> str:
    """A news caption: the event and the place are noise, the noun phrase is the content."""
    return format_text(f"{rng.choice(_EVENTS)} {noun_phrase(item, mention)} {rng.choice(_WHEN)}")


def news_headline(item: Item, mention: Sequence[str], rng: random.Random) -> str:
    noun = noun_phrase(item, mention, article=False)
    return format_text(
        rng.choice(("{n} draws crowds", "{n} returns to the square", "Town celebrates {n}")).format(n=noun)
    )


# --- fashion (Fashion200K, FashionIQ) -------------------------------------------------------------

GARMENTS = {
    "circle": "skirt",
    "square": "dress",
    "triangle": "top",
    "star": "jacket",
    "cross": "shirt",
    "diamond": "coat",
    "ring": "scarf",
    "hexagon": "bag",
}
FITS = {"small": "petite", "medium": "regular", "large": "oversized"}
PATTERNS = {"solid": "plain", "striped": "striped", "dotted": "polka-dot", "checkered": "check"}
FASHION_ATTRIBUTES = ("shape", "colour", "texture", "size")


def product_text(item: Item) -> str:
    """A Fashion200K-style product line: lower case, no full stop, garment from the shape."""
    return f"{item.colour} {PATTERNS[item.texture]} {FITS[item.size]} {GARMENTS[item.shape]}"


_FASHION_EDITS = {
    "colour": ("is {colour}", "is {colour} instead", "has a {colour} colour"),
    "texture": ("has a {pattern} pattern", "is {pattern}"),
    "size": ("is {fit}", "has a more {fit} fit"),
    "shape": ("is a {garment}", "is a {garment} instead"),
}


def fashion_edit(before: Item, after: Item, rng: random.Random) -> str:
    """A FashionIQ-style relative caption ('is blue and has a check pattern'), lower case."""
    values = {
        "colour": after.colour,
        "pattern": PATTERNS[after.texture],
        "fit": FITS[after.size],
        "garment": GARMENTS[after.shape],
    }
    parts = [
        rng.choice(_FASHION_EDITS[a]).format(**values)
        for a in FASHION_ATTRIBUTES
        if getattr(before, a) != getattr(after, a)
    ]
    return " and ".join(parts)
