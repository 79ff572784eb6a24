"""Encyclopedia texts about entities (WebQA, OVEN, InfoSeek): passages, facts and questions.

Passages describe the emblem's look, so an image of it can be matched to its article; questions
about an image ask for the name or a fact, whose answer is recorded in `query_src_content`.
"""

from __future__ import annotations

import random

from umarvel_cli.data.demo.texts import TEXTURE_WORDS, format_text
from umarvel_cli.data.demo.world import Entity, Item

Looks = Entity | Item  # anything with a shape, a colour and a texture


def look(entity: Looks) -> str:
    return f"{TEXTURE_WORDS[entity.texture]} {entity.colour} {entity.shape}"


def article(entity: Entity, voice: str) -> str:
    """An encyclopedia paragraph, `{title}. {content}` like InfoSeek's wiki candidates."""
    if voice == "infoseek":
        body = (
            f"{entity.name} is a heraldic emblem showing a {look(entity)}. "
            f"It was first recorded in {entity.year} and is kept in {entity.place}"
        )
    else:
        body = f"The {entity.name} emblem is a {look(entity)} that originated in {entity.place}"
    return format_text(f"{entity.name}. {body}")


def caption(entity: Entity, voice: str) -> str:
    """The short text that goes with an entity's picture in an (image, text) candidate."""
    if voice == "infoseek":
        return format_text(f"{entity.name}, emblem first recorded in {entity.year}")
    return format_text(f"The {entity.name} emblem of {entity.place}")


def facts(entity: Entity) -> list[str]:
    """Two WebQA-style facts about one entity; both mention its look."""
    return [
        format_text(f"The {entity.name} emblem, a {look(entity)}, was first recorded in {entity.year}"),
        format_text(
            f"{entity.name}, known for its {entity.colour} {entity.shape} with a "
            f"{TEXTURE_WORDS[entity.texture]} pattern, comes from {entity.place}"
        ),
    ]


# Questions describe the look in other words than the articles, so word overlap alone does not answer them.
COLOUR_SYNONYMS = {
    "red": ("crimson", "scarlet"),
    "green": ("emerald", "leaf-green"),
    "blue": ("azure", "cobalt"),
    "yellow": ("golden", "lemon"),
    "purple": ("violet", "lilac"),
    "orange": ("amber", "tangerine"),
    "white": ("snowy", "ivory"),
    "black": ("ebony", "jet"),
}
TEXTURE_PHRASES = {
    "solid": ("no pattern", "a single flat colour"),
    "striped": ("stripes", "diagonal bands"),
    "dotted": ("dots", "little spots"),
    "checkered": ("a check pattern", "small squares"),
}


def reworded_look(entity: Looks, rng: random.Random) -> str:
    """'a scarlet star with diagonal bands': the look without the articles' colour and pattern words."""
    colour = rng.choice(COLOUR_SYNONYMS[entity.colour])
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {entity.shape} with {rng.choice(TEXTURE_PHRASES[entity.texture])}"


def text_question(entity: Entity, rng: random.Random) -> tuple[str, str]:
    """A WebQA text question that describes the look in other words; returns (question, category)."""
    if rng.random() < 0.5:
        return format_text(
            f"When was the emblem showing {reworded_look(entity, rng)} first recorded?"
        ), "number"
    return format_text(f"Where does the emblem with {reworded_look(entity, rng)} come from?"), "Others"


def look_question(entity: Entity, rng: random.Random) -> str:
    """A WebQA question answered by a picture of the emblem."""
    return format_text(
        rng.choice(("Which emblem shows a {l}?", "What does the {l} emblem look like?")).format(
            l=look(entity)
        )
    )


def image_question(entity: Entity, voice: str, rng: random.Random) -> tuple[str, dict]:
    """A question about a picture of the entity, and its src_content (answer, entity id)."""
    if voice == "infoseek":
        if rng.random() < 0.5:
            q, kind, answer = "In which year was this emblem first recorded?", "time", str(entity.year)
        else:
            q, kind, answer = "Where is this emblem kept?", "string", entity.place
        src = {
            "answer": answer,
            "answer_eval": [answer],
            "entity_id": entity.entity_id,
            "question_type": kind,
        }
        return q, src
    q = rng.choice(
        ("What is this emblem called?", "Which emblem is shown here?", "What is the name of this emblem?")
    )
    return q, {
        "data_id": f"oven_{entity.entity_id}_{rng.randint(0, 99999):05d}",
        "entity_id": entity.entity_id,
    }
