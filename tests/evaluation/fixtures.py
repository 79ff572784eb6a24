"""Small prepared M-BEIR tables with known embeddings, so rankings and metrics are known by hand.

Three tasks (mscoco_task0, webqa_task1, nights_task4), unit basis vectors in 16 dimensions:
- mscoco_task0_test pool: 9:c0..9:c7 = e0..e7 (images);
- webqa_task1 pool: 2:c0..2:c2 = e8..e10 (texts); nights_task4 pool: 4:c0, 4:c1 = e11, e12 (images).
Queries (test): 9:q0 = e0 (pos 9:c0); 9:q1 = e2+..+e6 + 0.5 e1 (pos 9:c1, 9:c5; c5 is 4th after a
5-way tie); 2:q0 = e0+..+e5 + 0.5 e8 (pos 2:c0: first locally, 7th in the union behind images);
2:q1 = e10 (pos 2:c1 and 2:gone, which no pool holds; 2:c1 is 3rd locally, 10th in the union);
4:q0 = e12 (pos 4:c1); 4:q1 = e11 without any qrels. One val query (9:qv) that test ignores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, embeddings_schema, read_table, write_manifest

DIM = 16


def e(*weights: tuple[int, float]) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for i, w in weights:
        v[i] = w
    return v


CANDIDATES = {
    **{f"9:c{i}": ("image", e((i, 1.0))) for i in range(8)},
    **{f"2:c{i}": ("text", e((8 + i, 1.0))) for i in range(3)},
    "4:c0": ("image", e((11, 1.0))),
    "4:c1": ("image", e((12, 1.0))),
    "2:gone": ("text", e((15, 1.0))),
}
POOLS = {
    "mscoco_task0_test": [f"9:c{i}" for i in range(8)],
    "webqa_task1": [f"2:c{i}" for i in range(3)],
    "nights_task4": ["4:c0", "4:c1"],
}
# qid: (split, dataset_id, task_id, modality, vector, positives)
QUERIES = {
    "9:q0": ("test", 9, 0, "text", e((0, 1.0)), ["9:c0"]),
    "9:q1": ("test", 9, 0, "text", e((1, 0.5), *[(i, 1.0) for i in range(2, 7)]), ["9:c1", "9:c5"]),
    "2:q0": ("test", 2, 1, "text", e((8, 0.5), *[(i, 1.0) for i in range(6)]), ["2:c0"]),
    "2:q1": ("test", 2, 1, "text", e((10, 1.0)), ["2:c1", "2:gone"]),
    "4:q0": ("test", 4, 4, "image", e((12, 1.0)), ["4:c1"]),
    "4:q1": ("test", 4, 4, "image", e((11, 1.0)), []),
    "9:qv": ("val", 9, 0, "text", e((3, 1.0)), ["9:c3"]),
}
VECTORS = {**{d: v for d, (_, v) in CANDIDATES.items()}, **{q: row[4] for q, row in QUERIES.items()}}


def write_prepared(root: Path, stage: str = "prepare-mbeir") -> Path:
    with ShardWriter(root, "candidates", TABLES["candidates"]) as w:
        w.write_rows(
            {"did": d, "modality": m, "text": None, "image": None, "src_content": None}
            for d, (m, _) in CANDIDATES.items()
        )
    with ShardWriter(root, "pools", TABLES["pools"]) as w:
        w.write_rows({"pool": p, "did": d} for p, dids in POOLS.items() for d in dids)
    with ShardWriter(root, "queries", TABLES["queries"], rows_per_shard=4) as w:
        w.write_rows(
            {
                "qid": q,
                "split": s,
                "task_id": t,
                "dataset_id": ds,
                "modality": m,
                "text": "x",
                "image": None,
                "pos": pos,
                "neg": [],
                "src_content": None,
            }
            for q, (s, ds, t, m, _, pos) in QUERIES.items()
        )
    with ShardWriter(root, "qrels", TABLES["qrels"]) as w:
        w.write_rows(
            {"qid": q, "did": d, "relevance": 1, "task_id": t, "split": s}
            for q, (s, _, t, _, _, pos) in QUERIES.items()
            for d in pos
        )
    write_manifest(root, Manifest(stage=stage, params={}, extra={"images_root": str(root)}))
    return root


class FakeEmbedder:
    """Stands in for umarvel_cli.embedding.run_embed: writes the fixture's vectors, skips up-to-date outputs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.skipped = 0

    def __call__(
        self,
        model,
        data,
        split,
        side,
        out,
        pool=None,
        batch_size=32,
        dtype="float32",
        instruction_mode="first",
        force=False,
        device=None,
    ):
        out = Path(out)
        self.calls.append((side, pool))
        if (out / "manifest.json").is_file() and not force:
            self.skipped += 1
            return None
        if side == "queries":
            t = read_table(data, "queries", columns=["qid", "split"]).to_pylist()
            ids = [r["qid"] for r in t if r["split"] == split]
        else:
            t = read_table(data, "pools").to_pylist()
            ids = [r["did"] for r in t if r["pool"] == pool]
        with ShardWriter(out, "embeddings", embeddings_schema(DIM, dtype), rows_per_shard=3) as w:
            w.write_columns({"id": ids, "embedding": [VECTORS[i] for i in ids]})
        manifest = Manifest(
            stage="embed",
            params={},
            extra={
                "dim": DIM,
                "dtype": dtype,
                "side": side,
                "split": split,
                "pool": pool,
                "model": str(model),
            },
        )
        write_manifest(out, manifest)
        return manifest
