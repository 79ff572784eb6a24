"""The demo's near-duplicate marks: every group is real (same object, entity or product) and spans ids."""

from __future__ import annotations

import json
from collections import defaultdict

from umarvel_cli.data.demo.marks import MARKS_FILE
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.mining.near_duplicates import read_marks

SPEC = load_mbeir_spec()


def _candidates(root):
    out = {}
    for name in SPEC.global_pools:
        for line in (root / SPEC.path("global_pool", pool=name)).read_text().splitlines():
            c = json.loads(line)
            out[c["did"]] = c
    return out


def test_marks_name_existing_candidates_in_groups_of_two_or_more(demo_root):
    marks = read_marks(demo_root / MARKS_FILE)
    cands = _candidates(demo_root)
    assert marks and set(marks) <= set(cands)
    groups = defaultdict(set)
    for did, gs in marks.items():
        for g in gs:
            groups[g].add(did)
    assert all(len(d) >= 2 for d in groups.values())
    kinds = {g.split(":")[0] for g in groups}
    assert kinds == {"item", "entity", "product"}
    # an object drawn again in another dataset: one item group spans several datasets
    assert any(
        len({d.split(":")[0] for d in dids}) > 1 for g, dids in groups.items() if g.startswith("item:")
    )
    # entity groups hold the OVEN/InfoSeek-style candidates that share the entity's src_content
    for g, dids in groups.items():
        if g.startswith("entity:"):
            titles = {
                json.loads(cands[d]["src_content"])["wikidata_id"] for d in dids if cands[d]["src_content"]
            }
            assert titles == {g.split(":", 1)[1]}
