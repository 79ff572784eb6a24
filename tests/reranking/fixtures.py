"""Small prepared tables with texts and images a tiny reranker can read, and runs over them.

Two tasks: mscoco_task0 (9:q*, text -> image, pool 9:c0..9:c3) and webqa_task1 (2:q*, text ->
text, pool 2:c0..2:c2). Test queries 9:q0..9:q3 and 2:q0..2:q2, val queries 9:v0, 2:v0.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.models.tiny_models import random_image
from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, write_manifest

WORDS = ["red bus", "green tree", "blue sky", "small house", "big river", "old city", "white flower"]
CANDIDATES = {
    **{f"9:c{i}": ("image", None, f"img/c{i}.png") for i in range(4)},
    **{f"2:c{i}": ("text", f"a {WORDS[i]} in the picture", None) for i in range(3)},
}
POOLS = {"mscoco_task0_test": [f"9:c{i}" for i in range(4)], "webqa_task1": [f"2:c{i}" for i in range(3)]}
POOLS["mscoco_task0_val"] = POOLS["mscoco_task0_test"]
# qid: (split, dataset_id, task_id, text, positives)
QUERIES = {
    **{f"9:q{i}": ("test", 9, 0, f"show the {WORDS[i]}", [f"9:c{i}"]) for i in range(4)},
    **{f"2:q{i}": ("test", 2, 1, f"where is the {WORDS[i]}", [f"2:c{i}"]) for i in range(3)},
    "9:v0": ("val", 9, 0, "show the blue sky", ["9:c2"]),
    "2:v0": ("val", 2, 1, "where is the green tree", ["2:c1"]),
}


IMAGE_QUERY = "9:q3"  # the one query with an image (and text)


def write_prepared(root: Path) -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    for i in range(4):
        random_image(10 + i, 40 + 8 * i, 36).save(root / "img" / f"c{i}.png")
    random_image(20, 50, 50).save(root / "img" / "q3.png")
    with ShardWriter(root, "candidates", TABLES["candidates"]) as w:
        w.write_rows(
            {"did": d, "modality": m, "text": t, "image": img, "src_content": None}
            for d, (m, t, img) in CANDIDATES.items()
        )
    with ShardWriter(root, "pools", TABLES["pools"]) as w:
        w.write_rows({"pool": p, "did": d} for p, dids in POOLS.items() for d in dids)
    with ShardWriter(root, "queries", TABLES["queries"]) as w:
        w.write_rows(
            {
                "qid": q,
                "split": s,
                "task_id": t,
                "dataset_id": ds,
                "modality": "image,text" if q == IMAGE_QUERY else "text",
                "text": text,
                "image": "img/q3.png" if q == IMAGE_QUERY else None,
                "pos": pos,
                "neg": [],
                "src_content": None,
            }
            for q, (s, ds, t, text, pos) in QUERIES.items()
        )
    with ShardWriter(root, "qrels", TABLES["qrels"]) as w:
        w.write_rows(
            {"qid": q, "did": d, "relevance": 1, "task_id": t, "split": s}
            for q, (s, _, t, _, pos) in QUERIES.items()
            for d in pos
        )
    write_manifest(root, Manifest(stage="prepare-mbeir", params={}, extra={"images_root": str(root)}))
    return root


def local_rows(split: str, score_of=None) -> list[dict]:
    """A run ranking each query's whole local pool; `score_of(qid, did)` gives the cosine (default: a
    fixed pattern where the positive is ranked last)."""
    rows = []
    for q, (s, _, _, _, pos) in QUERIES.items():
        if s != split:
            continue
        pool = [d for d in CANDIDATES if d.split(":")[0] == q.split(":")[0]]
        scored = [
            (d, score_of(q, d) if score_of else (0.1 if d in pos else 0.9 - 0.1 * k))
            for k, d in enumerate(pool)
        ]
        for rank, (d, score) in enumerate(sorted(scored, key=lambda x: -x[1]), start=1):
            rows.append({"qid": q, "did": d, "rank": rank, "score": score})
    return rows


def write_run(root: Path, rows: list[dict]) -> Path:
    """A finished `umarvel search` output holding `rows` (stages read only complete outputs)."""
    with ShardWriter(root, "run", TABLES["run"]) as w:
        w.write_rows(rows)
    pinned = {"rows_sha256": hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()}
    write_manifest(root, Manifest(stage="search", params=pinned, counts={"rows": len(rows)}))
    return root
