"""Build the whole demo dataset in memory: every task's queries and pools for every split group.

Groups follow the spec: train candidates form `union_train`; val and test share a task's local
pool unless its pool name depends on the split (MSCOCO), in which case each split gets its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from umarvel_cli.data.demo.records import Registry
from umarvel_cli.data.demo.tasks import BUILDERS, TaskBuild, label_all_matches
from umarvel_cli.data.demo.world import entity_catalog
from umarvel_cli.data.mbeir.tasks import MBEIRSpec, TaskSpec

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DemoSize:
    """Queries per task and split, distractors per query, and the side corpora."""

    train: int
    val: int
    test: int
    hard: int
    entity_bases: int
    nli: int
    captions: int

    def queries(self, split: str) -> int:
        return getattr(self, split)


DEMO_SIZES: dict[str, DemoSize] = {
    # tests: generates in about a second
    "tiny": DemoSize(train=16, val=6, test=12, hard=2, entity_bases=8, nli=64, captions=48),
    # `make demo`: a few hundred training queries per task, trainable on a CPU
    "small": DemoSize(train=300, val=40, test=100, hard=6, entity_bases=24, nli=3000, captions=2000),
}


def demo_size(name: str) -> DemoSize:
    try:
        return DEMO_SIZES[name]
    except KeyError:
        raise ValueError(f"unknown demo size {name!r}; known: {', '.join(DEMO_SIZES)}") from None


def split_groups(task: TaskSpec) -> list[tuple[str, tuple[str, ...]]]:
    """(group name, splits it serves): one pool per group."""
    if task.pool("val") == task.pool("test"):
        return [("train", ("train",)), ("eval", ("val", "test"))]
    return [("train", ("train",)), ("val", ("val",)), ("test", ("test",))]


@dataclass
class DemoData:
    spec: MBEIRSpec
    builds: list[TaskBuild]
    registry: Registry
    cross_positives: dict[str, dict[str, int]]

    def build_for(self, stem: str, split: str) -> TaskBuild:
        for b in self.builds:
            if b.task.stem == stem and split in b.splits:
                return b
        raise KeyError((stem, split))


def build_demo(spec: MBEIRSpec, seed: int, size: DemoSize) -> DemoData:
    registry = Registry(spec.files["images_dir"])
    catalog = entity_catalog(seed, size.entity_bases)
    builds: list[TaskBuild] = []
    for task in spec.tasks:
        builder = BUILDERS.get(task.task_id)
        if builder is None:
            raise ValueError(f"the demo has no builder for task id {task.task_id} ({task.stem})")
        for group, splits in split_groups(task):
            b = TaskBuild(
                task=task,
                group=group,
                splits=splits,
                rng=random.Random(f"demo:{seed}:{task.stem}:{group}"),
                registry=registry,
                catalog=catalog,
                hard=size.hard,
            )
            for split in splits:
                builder(b, split, size.queries(split))
            label_all_matches(b)
            builds.append(b)
    data = DemoData(spec, builds, registry, {s: {} for s in SPLITS})
    _link_cross_positives(data)
    return data


def _link_cross_positives(data: DemoData) -> None:
    """OVEN/InfoSeek-like: a query also gets the partner dataset's candidate of the same entity.

    The partner's candidate is not in this task's local pool (as in the real data) but is in the
    global pools.
    """
    for b in data.builds:
        if b.style.cross_rate <= 0:
            continue
        for split, queries in b.queries.items():
            partners = [
                p
                for p in data.builds
                if split in p.splits
                and p.task.task_id == b.task.task_id
                and p.task.dataset != b.task.dataset
                and p.style.domain == b.style.domain
            ]
            n = 0
            for q in queries:
                if not (q.cross and q.entity):
                    continue
                for p in partners:
                    did = p.entity_dids.get(q.entity)
                    if did is not None and did not in q.pos:
                        q.pos.append(did)
                        n += 1
            data.cross_positives[split][b.task.stem] = n
