"""One builder per M-BEIR task id: it writes the queries of a split group and fills that group's pool.

The builder is chosen by `task_id` (from the M-BEIR spec); the dataset only picks a text voice
(`STYLES`), so a task added to `data_manifests/mbeir.yaml` still gets data. A pool holds one entry
per content key, so equal content never gets two ids and every distractor really differs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from umarvel_cli.data.demo import texts, wiki
from umarvel_cli.data.demo.records import Candidate, Meaning, Picture, Query, Registry, id_number
from umarvel_cli.data.demo.world import (
    ATTRIBUTES,
    Entity,
    Item,
    Jitter,
    mutate,
    near_entities,
    random_item,
    scene_for,
)
from umarvel_cli.data.mbeir.tasks import TaskSpec


@dataclass(frozen=True)
class Style:
    """How a dataset talks: its domain voice and the shape of its positives."""

    domain: str = "everyday"  # news | everyday | fashion | wiki
    captions_per_image: int = 1  # image→text positives per image (MSCOCO: 5)
    pictures_per_entity: int = 1  # (image, text) candidates per entity
    cross_rate: float = 0.0  # share of queries that also get the partner dataset's candidate


STYLES: dict[str, Style] = {
    "visualnews": Style("news"),
    "edis": Style("news"),
    "mscoco": Style("everyday", captions_per_image=5),
    "nights": Style("everyday"),
    "cirr": Style("everyday"),
    "fashion200k": Style("fashion"),
    "fashioniq": Style("fashion"),
    "webqa": Style("wiki", pictures_per_entity=2),
    "oven": Style("wiki", pictures_per_entity=2, cross_rate=0.3),
    "infoseek": Style("wiki", cross_rate=0.1),
}


def style_of(dataset: str) -> Style:
    return STYLES.get(dataset, Style())


def product_key(item: Item) -> tuple[str, ...]:
    """What a fashion product line says: the same product may be photographed in several scenes."""
    return tuple(getattr(item, a) for a in texts.FASHION_ATTRIBUTES)


@dataclass
class TaskBuild:
    """The queries and the pool of one task for one split group (train, or val+test sharing a pool)."""

    task: TaskSpec
    group: str
    splits: tuple[str, ...]
    rng: random.Random
    registry: Registry
    catalog: list[Entity]
    hard: int
    entries: dict[Hashable, list[Candidate]] = field(default_factory=dict)
    pool: list[Candidate] = field(default_factory=list)
    queries: dict[str, list[Query]] = field(default_factory=dict)
    entity_dids: dict[str, str] = field(default_factory=dict)
    asked: set[Hashable] = field(default_factory=set)  # (kind, key) of the items queries were made for

    @property
    def style(self) -> Style:
        return style_of(self.task.dataset)

    # -- pool ----------------------------------------------------------------------------------
    def picture(self, item: Item, avoid: Jitter | None = None, jitter: Jitter | None = None) -> Picture:
        """A drawing of `item` with the given jitter, or a random one other than `avoid`."""
        while jitter is None or jitter == avoid:
            jitter = Jitter.draw(self.rng)
        return self.registry.picture(self.task.dataset, self.group, item, jitter)

    def entry(self, key: Hashable, make: Callable[[], list[dict[str, Any]]]) -> list[Candidate]:
        """The candidates stored under `key`, created on first use."""
        if key not in self.entries:
            made = [
                Candidate(did=self.registry.did(self.task.dataset_id), modality=self.task.cand_modality, **f)
                for f in make()
            ]
            for c in made:
                _check_modality(c.modality, c.txt, c.image, self.task.stem)
                if c.entity is not None:
                    self.entity_dids.setdefault(c.entity, c.did)
            self.entries[key] = made
            self.pool.extend(made)
        return self.entries[key]

    def fresh(self, kind: str, key: Callable[[Item], Hashable] = lambda i: i) -> Item:
        """A random item no other query of this pool asked for, preferably one not in the pool yet.

        A small world (fashion products) may run out of unused items; then an item that is already a
        distractor becomes a query, and its existing entry is its set of positives.
        """
        for attempt in range(5000):
            item = random_item(self.rng)
            wanted = (kind, key(item))
            if wanted in self.asked or (attempt < 200 and wanted in self.entries):
                continue
            self.asked.add(wanted)
            return item
        raise RuntimeError(f"demo world exhausted for {self.task.stem}; use a smaller size")

    def near(self, item: Item, attributes: tuple[str, ...]) -> tuple[Item, str]:
        """A hard distractor: one of `attributes` changed."""
        attr = self.rng.choice(attributes)
        return mutate(item, attr, self.rng), attr

    def image(self, item: Item, avoid: Jitter | None = None, jitter: Jitter | None = None) -> Candidate:
        return self.entry(("image", item), lambda: [{"image": self.picture(item, avoid, jitter)}])[0]

    def entity_pairs(self, entity: Entity, k: int) -> list[Candidate]:
        voice = self.task.dataset
        return self.entry(
            ("entity-pair", entity.entity_id),
            lambda: [
                {
                    "txt": wiki.caption(entity, voice),
                    "image": self.picture(scene_for(entity, self.rng)),
                    "src_content": {"wikidata_id": entity.entity_id, "wikipedia_title": entity.name},
                    "entity": entity.entity_id,
                }
                for _ in range(k)
            ],
        )

    def article(self, entity: Entity) -> Candidate:
        return self.entry(
            ("article", entity.entity_id),
            lambda: [
                {
                    "txt": wiki.article(entity, self.task.dataset),
                    "src_content": {"wikidata_id": entity.entity_id, "wikipedia_title": entity.name},
                    "entity": entity.entity_id,
                }
            ],
        )[0]

    # -- queries -------------------------------------------------------------------------------
    def add_query(
        self,
        split: str,
        *,
        pos: list[Candidate],
        txt: str | None = None,
        image: Picture | None = None,
        src: dict[str, Any] | None = None,
        neg: list[Candidate] | None = None,
        entity: str | None = None,
        meaning: Meaning | None = None,
    ) -> Query:
        _check_modality(self.task.query_modality, txt, image, self.task.stem)
        pos_ids = list(dict.fromkeys(c.did for c in pos))
        neg_ids = [c.did for c in neg or [] if c.did not in pos_ids]
        q = Query(
            qid=self.registry.qid(self.task.dataset_id),
            modality=self.task.query_modality,
            task_id=self.task.task_id,
            txt=txt,
            image=image,
            src_content=src,
            pos=pos_ids,
            neg=neg_ids,
            entity=entity,
            meaning=meaning,
        )
        self.queries.setdefault(split, []).append(q)
        return q


def _check_modality(modality: str, txt: str | None, image: Picture | None, stem: str) -> None:
    has = ",".join(m for m, present in (("image", image is not None), ("text", txt is not None)) if present)
    if has != modality:
        raise ValueError(f"demo builder for {stem} made a {has or 'empty'} record where {modality} belongs")


# ---------------------------------------------------------------------------------------------
# Builders, one per task id. Each adds `n` queries of `split` to `b`.


def text_to_image(b: TaskBuild, split: str, n: int) -> None:
    """Task 0: a caption or product line → its image(s); distractors change a mentioned attribute."""
    rng = b.rng
    for _ in range(n):
        if b.style.domain == "fashion":
            item = b.fresh("product", product_key)
            pos = _product_images(b, item, rng.choice((1, 2, 2, 3)))
            for _ in range(b.hard):
                _product_images(b, b.near(item, texts.FASHION_ATTRIBUTES)[0], 1)
            b.add_query(
                split, txt=texts.product_text(item), pos=pos, meaning=(item, texts.FASHION_ATTRIBUTES)
            )
            continue
        item = b.fresh("image")
        if b.style.domain == "news":
            mention = ATTRIBUTES
            text = texts.news_caption(item, mention, rng)
        else:
            mention = texts.pick_mention(rng, 4, always=texts.EVERYDAY_ALWAYS)
            text = texts.everyday_caption(item, mention, rng)
        pos = [b.image(item)]
        hidden = [a for a in ATTRIBUTES if a not in mention]
        if hidden and rng.random() < 0.2:  # a second image the caption fits as well
            pos.append(b.image(mutate(item, rng.choice(hidden), rng)))
        for _ in range(b.hard):
            b.image(b.near(item, mention)[0])
        b.add_query(split, txt=text, pos=pos, meaning=(item, mention))


def _product_images(b: TaskBuild, item: Item, k: int) -> list[Candidate]:
    """Photos of one product in different scenes (position and background vary)."""

    def make() -> list[dict[str, Any]]:
        scenes = [item]
        for _ in range(20 * k):
            if len(scenes) == k:
                break
            scene = random_item(b.rng, **{a: getattr(item, a) for a in texts.FASHION_ATTRIBUTES})
            if scene not in scenes:
                scenes.append(scene)
        return [{"image": b.picture(s)} for s in scenes]

    return b.entry(("product", product_key(item)), make)


def image_to_text(b: TaskBuild, split: str, n: int) -> None:
    """Task 3: an image → its caption(s); MSCOCO-like datasets give several captions per image."""
    rng = b.rng
    for _ in range(n):
        if b.style.domain == "fashion":
            item = b.fresh("product-text", product_key)
            pos = _product_text(b, item)
            for _ in range(b.hard):
                _product_text(b, b.near(item, texts.FASHION_ATTRIBUTES)[0])
        elif b.style.domain == "news":
            item = b.fresh("caption")
            pos = _news_caption(b, item)
            for _ in range(b.hard):
                _news_caption(b, b.near(item, ATTRIBUTES)[0])
        else:
            item = b.fresh("captions")
            k = b.style.captions_per_image - (
                1 if b.style.captions_per_image > 1 and rng.random() < 0.1 else 0
            )
            pos = b.entry(
                ("captions", item),
                lambda i=item, k=k: [
                    {"txt": t, "meaning": (i, m)} for t, m in texts.everyday_captions(i, k, rng)
                ],
            )
            for _ in range(b.hard):
                other, attr = b.near(item, ATTRIBUTES)
                mention = tuple(
                    a
                    for a in ATTRIBUTES
                    if a in set(texts.pick_mention(rng, 4, always=texts.EVERYDAY_ALWAYS)) | {attr}
                )
                b.entry(
                    ("captions", other),
                    lambda o=other, m=mention: [
                        {"txt": texts.everyday_caption(o, m, rng), "meaning": (o, m)}
                    ],
                )
        b.add_query(split, image=b.picture(item), pos=pos)


def _product_text(b: TaskBuild, item: Item) -> list[Candidate]:
    return b.entry(
        ("product-text", product_key(item)),
        lambda: [{"txt": texts.product_text(item), "meaning": (item, texts.FASHION_ATTRIBUTES)}],
    )


def _news_caption(b: TaskBuild, item: Item) -> list[Candidate]:
    return b.entry(
        ("caption", item),
        lambda: [{"txt": texts.news_caption(item, ATTRIBUTES, b.rng), "meaning": (item, ATTRIBUTES)}],
    )


def text_to_text(b: TaskBuild, split: str, n: int) -> None:
    """Task 1: a question naming an emblem's look → the encyclopedia facts about it."""
    rng = b.rng
    for _ in range(n):
        entity = rng.choice(b.catalog)
        question, category = wiki.text_question(entity, rng)
        pos = _facts(b, entity)
        near = near_entities(entity, b.catalog)
        for other in rng.sample(near, min(b.hard, len(near))):
            _facts(b, other)
        src = {"Guid": f"d{rng.getrandbits(48):012x}", "Qcate": category}
        b.add_query(split, txt=question, pos=pos, src=src, entity=entity.entity_id)


def _facts(b: TaskBuild, entity: Entity) -> list[Candidate]:
    return b.entry(("facts", entity.entity_id), lambda: [{"txt": f} for f in wiki.facts(entity)])


def text_to_pair(b: TaskBuild, split: str, n: int) -> None:
    """Task 2: a question or news caption → (image, text) candidates; the image decides."""
    rng = b.rng
    for _ in range(n):
        if b.style.domain == "wiki":
            entity = rng.choice(b.catalog)
            pos = b.entity_pairs(entity, rng.randint(1, b.style.pictures_per_entity))
            near = near_entities(entity, b.catalog)
            for other in rng.sample(near, min(b.hard, len(near))):
                b.entity_pairs(other, 1)
            b.add_query(split, txt=wiki.look_question(entity, rng), pos=pos, entity=entity.entity_id)
            continue
        item = b.fresh("image")
        mention = ("shape", "colour", "size", "background") + (("texture",) if rng.random() < 0.5 else ())
        mention = tuple(a for a in ATTRIBUTES if a in mention)
        hidden = [a for a in ATTRIBUTES if a not in mention]
        scenes = [item]
        for _ in range(rng.randint(0, 2)):  # EDIS-like: several photos of the same story
            scene = mutate(item, rng.choice(hidden), rng)
            if scene not in scenes:
                scenes.append(scene)
        pos = [_news_pair(b, s) for s in scenes]
        for _ in range(b.hard):
            _news_pair(b, b.near(item, mention)[0])
        b.add_query(split, txt=texts.news_caption(item, mention, rng), pos=pos, meaning=(item, mention))


def _news_pair(b: TaskBuild, item: Item) -> Candidate:
    return b.entry(
        ("image", item),
        lambda: [{"image": b.picture(item), "txt": texts.news_headline(item, ("shape", "colour"), b.rng)}],
    )[0]


SUBTLE = ("shape", "colour", "texture", "size")  # what NIGHTS-like distractors change


def image_to_image(b: TaskBuild, split: str, n: int) -> None:
    """Task 4: an image → another rendering of the same scene (NIGHTS-like).

    The positive is shifted and relit; the distractors keep the query's exact rendering but change one
    of shape, colour, texture or size, so pixel similarity prefers them and a model must see the change.
    """
    for _ in range(n):
        item = b.fresh("image")
        query = b.picture(item)
        pos = b.image(item, jitter=_far_jitter(b.rng, query.jitter))
        negs = [b.image(b.near(item, SUBTLE)[0], jitter=query.jitter) for _ in range(b.hard)]
        b.add_query(split, image=query, pos=[pos], neg=negs[:1] if split == "train" else None)


def _far_jitter(rng: random.Random, near: Jitter) -> Jitter:
    while True:
        jitter = Jitter.draw(rng)
        if abs(jitter.dx - near.dx) + abs(jitter.dy - near.dy) >= 4:
            return jitter


def pair_to_text(b: TaskBuild, split: str, n: int) -> None:
    """Task 6: a picture of an emblem + a question → its encyclopedia article (OVEN/InfoSeek-like)."""
    for entity in b.catalog:  # the article pool holds every entity, like a wiki dump
        b.article(entity)
    for _ in range(n):
        _entity_query(b, split, lambda e: [b.article(e)])


def pair_to_pair(b: TaskBuild, split: str, n: int) -> None:
    """Task 8: a picture of an emblem + a question → (picture, caption) candidates of that emblem."""
    for entity in b.catalog:
        b.entity_pairs(entity, b.style.pictures_per_entity)
    for _ in range(n):
        _entity_query(b, split, lambda e: b.entity_pairs(e, b.style.pictures_per_entity))


def _entity_query(b: TaskBuild, split: str, positives: Callable[[Entity], list[Candidate]]) -> None:
    rng = b.rng
    entity = rng.choice(b.catalog)
    question, src = wiki.image_question(entity, b.task.dataset, rng)
    q = b.add_query(
        split,
        txt=question,
        image=b.picture(scene_for(entity, rng)),
        src=src,
        pos=positives(entity),
        entity=entity.entity_id,
    )
    q.cross = rng.random() < b.style.cross_rate


def pair_to_image(b: TaskBuild, split: str, n: int) -> None:
    """Task 7: a reference image + a modification ('make it blue') → the modified image.

    The reference itself is in the pool as the hardest distractor (and the train negative).
    """
    rng = b.rng
    for _ in range(n):
        ref = b.fresh("image")
        if b.style.domain == "fashion":
            changed = tuple(rng.sample(texts.FASHION_ATTRIBUTES, rng.choice((1, 1, 2))))
        else:
            changed = (rng.choice(ATTRIBUTES),)
        target = ref
        for attr in changed:
            target = mutate(target, attr, rng)
        if b.style.domain == "fashion":
            text = texts.fashion_edit(ref, target, rng) or texts.edit_text(ref, target, rng)
        else:
            text = texts.edit_text(ref, target, rng)
        query_image = b.picture(ref)
        pos = b.image(target)
        kept = tuple(a for a in ATTRIBUTES if getattr(ref, a) == getattr(target, a))
        negs = [b.image(ref, avoid=query_image.jitter)]
        negs += [b.image(b.near(target, kept)[0]) for _ in range(b.hard - 1)]
        b.add_query(split, txt=text, image=query_image, pos=[pos], neg=negs[:1] if split == "train" else None)


def label_all_matches(b: TaskBuild) -> int:
    """Make every pool candidate that a text truly describes a positive (M-BEIR merges such positives).

    A caption that leaves out some attributes may fit a distractor drawn for another query; leaving
    it unlabeled would punish a correct retrieval. Returns the number of positives added.
    """
    images = [(c.did, c.image.item) for c in b.pool if c.image is not None]
    captions: dict[tuple[str, ...], dict[tuple[str, ...], list[str]]] = {}
    for c in b.pool:
        if c.meaning is not None:
            item, attrs = c.meaning
            captions.setdefault(attrs, {}).setdefault(_project(item, attrs), []).append(c.did)
    by_attrs: dict[tuple[str, ...], dict[tuple[str, ...], list[str]]] = {}
    added = 0
    for queries in b.queries.values():
        for q in queries:
            if q.meaning is not None:  # a text query: the images it describes
                item, attrs = q.meaning
                if attrs not in by_attrs:
                    index: dict[tuple[str, ...], list[str]] = {}
                    for did, image_item in images:
                        index.setdefault(_project(image_item, attrs), []).append(did)
                    by_attrs[attrs] = index
                found = by_attrs[attrs].get(_project(item, attrs), [])
            elif q.image is not None and captions:  # an image query: the captions that describe it
                found = sorted(
                    (
                        d
                        for attrs, index in captions.items()
                        for d in index.get(_project(q.image.item, attrs), [])
                    ),
                    key=id_number,
                )
            else:
                continue
            for did in found:
                if did not in q.pos:
                    q.pos.append(did)
                    added += 1
    return added


def _project(item: Item, attrs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(getattr(item, a) for a in attrs)


BUILDERS: dict[int, Callable[[TaskBuild, str, int], None]] = {
    0: text_to_image,
    1: text_to_text,
    2: text_to_pair,
    3: image_to_text,
    4: image_to_image,
    6: pair_to_text,
    7: pair_to_image,
    8: pair_to_pair,
}
