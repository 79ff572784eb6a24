"""Declared pyarrow schemas of every table umarvel writes, with a schema version in their metadata.

Readers refuse a table whose version differs, so an old artifact never gets silently misread.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
VERSION_KEY = b"umarvel.schema_version"
TABLE_KEY = b"umarvel.table"

MODALITIES = ("text", "image", "image,text")


def _with_meta(name: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={TABLE_KEY: name.encode(), VERSION_KEY: str(SCHEMA_VERSION).encode()})


_str = pa.string()
_ids = pa.list_(pa.string())

TABLES: dict[str, pa.Schema] = {
    # One row per query; `split` is train/val/test; `pos`/`neg` are candidate ids from the source.
    "queries": _with_meta(
        "queries",
        [
            pa.field("qid", _str, nullable=False),
            pa.field("split", _str, nullable=False),
            pa.field("task_id", pa.int8(), nullable=False),
            pa.field("dataset_id", pa.int16(), nullable=False),
            pa.field("modality", _str, nullable=False),
            pa.field("text", _str),
            pa.field("image", _str),
            pa.field("pos", _ids, nullable=False),
            pa.field("neg", _ids, nullable=False),
            pa.field("src_content", _str),
        ],
    ),
    # One row per distinct candidate id across all pools.
    "candidates": _with_meta(
        "candidates",
        [
            pa.field("did", _str, nullable=False),
            pa.field("modality", _str, nullable=False),
            pa.field("text", _str),
            pa.field("image", _str),
            pa.field("src_content", _str),
        ],
    ),
    # Pool membership: which candidate ids a named pool holds (local pools, union pools).
    "pools": _with_meta(
        "pools", [pa.field("pool", _str, nullable=False), pa.field("did", _str, nullable=False)]
    ),
    "qrels": _with_meta(
        "qrels",
        [
            pa.field("qid", _str, nullable=False),
            pa.field("did", _str, nullable=False),
            pa.field("relevance", pa.int8(), nullable=False),
            pa.field("task_id", pa.int8(), nullable=False),
            pa.field("split", _str, nullable=False),
        ],
    ),
    "instructions": _with_meta(
        "instructions",
        [
            pa.field("dataset_id", pa.int16(), nullable=False),
            pa.field("dataset_name", _str),
            pa.field("query_modality", _str, nullable=False),
            pa.field("cand_modality", _str, nullable=False),
            pa.field("prompts", _ids, nullable=False),
        ],
    ),
    # Per-query galleries of zero-shot benchmarks ranked within a query's own candidates (GeneCIS,
    # SugarCrepe choices): the candidate ids each query is scored against.
    "galleries": _with_meta(
        "galleries", [pa.field("qid", _str, nullable=False), pa.field("did", _str, nullable=False)]
    ),
    # Training pairs of the progressive stages (nli: text->text with a hard negative; caption: text<->image).
    "pairs": _with_meta(
        "pairs",
        [
            pa.field("pair_id", _str, nullable=False),
            pa.field("kind", _str, nullable=False),
            pa.field("query_text", _str),
            pa.field("query_image", _str),
            pa.field("pos_text", _str),
            pa.field("pos_image", _str),
            pa.field("neg_text", _str),
            pa.field("neg_image", _str),
        ],
    ),
    # A ranking from any system: what search writes and eval reads.
    "run": _with_meta(
        "run",
        [
            pa.field("qid", _str, nullable=False),
            pa.field("did", _str, nullable=False),
            pa.field("rank", pa.int32(), nullable=False),
            pa.field("score", pa.float32(), nullable=False),
        ],
    ),
    # `umarvel mine`: one row per query. Negatives best first with their cosine scores and 1-based
    # ranks in the search (0 = drawn at random, not ranked); `first_pos_rank` is null when no labelled
    # positive is in the top-k; `top_neg_ids` is the unfiltered choice (the first k non-positives, the
    # released code's rule) kept for comparison; `drop_*` count what each filter removed, in order.
    "mined": _with_meta(
        "mined",
        [
            pa.field("qid", _str, nullable=False),
            pa.field("task", _str, nullable=False),
            pa.field("source", _str, nullable=False),
            pa.field("pos_ids", _ids, nullable=False),
            pa.field("pos_score", pa.float32()),
            pa.field("first_pos_rank", pa.int32()),
            pa.field("candidates", pa.int32(), nullable=False),
            pa.field("neg_ids", _ids, nullable=False),
            pa.field("neg_scores", pa.list_(pa.float32()), nullable=False),
            pa.field("neg_ranks", pa.list_(pa.int32()), nullable=False),
            pa.field("top_neg_ids", _ids, nullable=False),
            *[
                pa.field(f"drop_{name}", pa.int32(), nullable=False)
                for name in ("positive", "same_content", "range", "modality", "max_score", "margin", "ratio")
            ],
        ],
    ),
    # The id of each row of a faiss index, in index order.
    "ids": _with_meta("ids", [pa.field("id", _str, nullable=False)]),
    # Reranker scores of each query's retrieved top-k (`rerank score`): one row per (query, candidate),
    # the retriever's rank and cosine beside P(Yes); fusion and distillation read it.
    "teacher": _with_meta(
        "teacher",
        [
            pa.field("qid", _str, nullable=False),
            pa.field("did", _str, nullable=False),
            pa.field("rank", pa.int32(), nullable=False),
            pa.field("retrieval_score", pa.float32(), nullable=False),
            pa.field("rerank_score", pa.float32(), nullable=False),
        ],
    ),
}


def embeddings_schema(dim: int, dtype: str = "float32") -> pa.Schema:
    """Embedding shards: an id from the source and a fixed-size vector (fp16 or fp32)."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"embedding dtype must be float16 or float32, not {dtype}")
    value = pa.float16() if dtype == "float16" else pa.float32()
    schema = _with_meta(
        "embeddings",
        [pa.field("id", _str, nullable=False), pa.field("embedding", pa.list_(value, dim), nullable=False)],
    )
    return schema


def schema_for(table: str) -> pa.Schema:
    try:
        return TABLES[table]
    except KeyError as e:
        raise KeyError(f"unknown table {table!r}; known: {', '.join(sorted(TABLES))}") from e
