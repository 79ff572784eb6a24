"""On-disk contracts every stage keeps: Parquet tables with versioned schemas, atomic shards, manifests."""

from umarvel_cli.artifacts.manifest import Manifest, fingerprint, read_manifest, write_manifest
from umarvel_cli.artifacts.schemas import SCHEMA_VERSION, TABLES, embeddings_schema, schema_for
from umarvel_cli.artifacts.shards import ShardWriter, count_rows, iter_batches, list_shards, read_table
from umarvel_cli.artifacts.stage import StagePlan, finish_stage, plan_stage

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Manifest",
    "ShardWriter",
    "StagePlan",
    "count_rows",
    "embeddings_schema",
    "fingerprint",
    "finish_stage",
    "iter_batches",
    "list_shards",
    "plan_stage",
    "read_manifest",
    "read_table",
    "schema_for",
    "write_manifest",
]
