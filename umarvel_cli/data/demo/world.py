"""The demo world: objects described by six visual attributes, and named "wiki" entities.

Images are drawn from these attributes and every text is written from them, so a model can learn
to match the two; near-duplicates differ in exactly one attribute, which makes the tasks hard.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond", "ring", "hexagon")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (35, 75, 220),
    "yellow": (240, 205, 25),
    "purple": (140, 60, 190),
    "orange": (250, 130, 20),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted", "checkered")
SIZES: dict[str, int] = {"small": 9, "medium": 14, "large": 20}  # radius in pixels on a 56 px canvas
POSITIONS: dict[str, tuple[int, int]] = {
    "centre": (0, 0),
    "left": (-1, 0),
    "right": (1, 0),
    "top": (0, -1),
    "bottom": (0, 1),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128),
    "sand": (222, 198, 150),
    "night": (22, 30, 64),
    "sky": (150, 200, 240),
}

ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "texture", "size", "position", "background")
VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "texture": TEXTURES,
    "size": tuple(SIZES),
    "position": tuple(POSITIONS),
    "background": tuple(BACKGROUNDS),
}


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


@dataclass(frozen=True, order=True)
class Item:
    """One object in one scene; every image and every text of the demo is derived from one."""

    shape: str
    colour: str
    texture: str
    size: str
    position: str
    background: str

    def replace(self, **changes: str) -> Item:
        return dataclasses.replace(self, **changes)

    @property
    def visible(self) -> bool:
        """The object stands out from its background (no black star in the night)."""
        return abs(_luma(COLOURS[self.colour]) - _luma(BACKGROUNDS[self.background])) > 45


@dataclass(frozen=True)
class Jitter:
    """Rendering noise that does not change what an image shows: a small shift and a brightness change."""

    dx: int = 0
    dy: int = 0
    light: int = 0

    @staticmethod
    def draw(rng: random.Random) -> Jitter:
        return Jitter(rng.randint(-4, 4), rng.randint(-4, 4), rng.randint(-20, 20))


def random_item(rng: random.Random, **fixed: str) -> Item:
    """A visible item; attributes given in `fixed` are kept."""
    while True:
        values = {a: fixed.get(a) or rng.choice(VALUES[a]) for a in ATTRIBUTES}
        item = Item(**values)
        if item.visible:
            return item


def mutate(item: Item, attribute: str, rng: random.Random) -> Item:
    """The same item with one attribute changed to another (visible) value."""
    options = [v for v in VALUES[attribute] if v != getattr(item, attribute)]
    rng.shuffle(options)
    for value in options:
        changed = item.replace(**{attribute: value})
        if changed.visible:
            return changed
    # every other value is invisible on this background: change the background too
    return random_item(rng, **{a: getattr(item, a) for a in ATTRIBUTES if a not in (attribute, "background")})


# ---------------------------------------------------------------------------------------------
# Entities: named emblems of a made-up encyclopedia (the wiki domain: WebQA, OVEN, InfoSeek).

ENTITY_ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "texture")
_SYLLABLES = (
    "ka",
    "ro",
    "vi",
    "mel",
    "dor",
    "an",
    "sel",
    "tu",
    "bra",
    "lin",
    "os",
    "qua",
    "zen",
    "fi",
    "mar",
)
_PLACES = ("Dalmere", "Ostrava Bay", "Kelvin Reach", "Lune Hollow", "Port Sable", "Thornwick", "Varos")


@dataclass(frozen=True)
class Entity:
    """A named emblem: its look (shape, colour, texture) and two facts questions can ask about."""

    entity_id: str
    name: str
    shape: str
    colour: str
    texture: str
    year: int
    place: str

    def item(self, **scene: str) -> Item:
        """The emblem drawn in a scene (size, position and background are free)."""
        return Item(self.shape, self.colour, self.texture, **scene)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.shape, self.colour, self.texture)


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        if name not in taken:
            taken.add(name)
            return name


def entity_catalog(seed: int, n_bases: int, textures_per_base: int = 3) -> list[Entity]:
    """`n_bases` (shape, colour) pairs, each with several textures: siblings are near-duplicates."""
    rng = random.Random(f"demo-entities:{seed}")
    bases = [(s, c) for s in SHAPES for c in COLOURS]
    rng.shuffle(bases)
    names: set[str] = set()
    out: list[Entity] = []
    for shape, colour in bases[:n_bases]:
        for texture in rng.sample(TEXTURES, textures_per_base):
            out.append(
                Entity(
                    entity_id=f"Q{1000 + len(out)}",
                    name=_name(rng, names),
                    shape=shape,
                    colour=colour,
                    texture=texture,
                    year=rng.randint(1500, 1990),
                    place=rng.choice(_PLACES),
                )
            )
    return out


def scene_for(entity: Entity, rng: random.Random) -> Item:
    """A visible scene showing the entity."""
    while True:
        item = entity.item(
            size=rng.choice(VALUES["size"]),
            position=rng.choice(VALUES["position"]),
            background=rng.choice(VALUES["background"]),
        )
        if item.visible:
            return item


def near_entities(entity: Entity, catalog: list[Entity]) -> list[Entity]:
    """Entities that share two of the three look attributes: the hard distractors of the wiki tasks."""
    return [
        e
        for e in catalog
        if e.entity_id != entity.entity_id
        and sum(a == b for a, b in zip(e.key, entity.key, strict=True)) == 2
    ]
