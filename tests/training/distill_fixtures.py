"""A small hand-built teacher table over the tiny demo tables (the distill stage's and command's tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, read_table, write_manifest
from umarvel_cli.artifacts.manifest import fingerprint
from umarvel_cli.artifacts.stage import PROGRESS

LIST = 5  # candidates per query in the hand-built table (distill_topk=4 keeps the best 4 by F)


def teacher_rows(data: Path, n_queries: int = 12, seed: int = 0) -> list[dict]:
    """Every 3rd train query: its first positive and LIST - 1 other union_train candidates, random scores."""
    rng = np.random.default_rng(seed)
    queries = read_table(data, "queries", ["qid", "split", "pos"]).to_pylist()
    train_q = [r for r in queries if r["split"] == "train"][::3][:n_queries]
    pool = read_table(data, "pools", ["pool", "did"]).to_pylist()
    union = [r["did"] for r in pool if r["pool"] == "union_train"]
    rows = []
    for i, q in enumerate(train_q):
        others = [d for d in union[i * 7 :] if d not in q["pos"]][: LIST - 1]
        for rank, did in enumerate([q["pos"][0], *others], start=1):
            rows.append({"qid": q["qid"], "did": did, "rank": rank,
                         "retrieval_score": float(rng.uniform(-1, 1)), "rerank_score": float(rng.uniform(0, 1))})  # fmt: skip
    return rows


def write_teacher(root: Path, data: Path, rows: list[dict], finished: bool = True) -> Path:
    """A `rerank score` output holding `rows` (finished: with its manifest; else a killed run's files)."""
    with ShardWriter(root, "teacher", TABLES["teacher"]) as w:
        w.write_rows(rows)
    if finished:
        # a real manifest pins what made the table; here the rows themselves (two tables written in
        # the same second must not share a fingerprint)
        pinned = {"rows_sha256": hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()}
        write_manifest(root, Manifest(stage="rerank-score", params=pinned, inputs={"data": fingerprint(data)},
                                      counts={"pairs": len(rows)}))  # fmt: skip
    else:
        (root / PROGRESS).write_text("{}")
    return root
