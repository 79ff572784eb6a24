"""`umarvel prepare mbeir`: read an M-BEIR folder into validated tables (queries, candidates, pools, qrels,
instructions)."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import OnError


def command(
    root: Path = typer.Option(
        ...,
        "--root",
        help="The M-BEIR folder (query/, cand_pool/, qrels/, instructions/; image files are checked "
        "when mbeir_images/ is there). Image paths stay relative to it.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder: queries, candidates, pools, qrels, instructions tables and manifest.json. "
        "A killed run resumes from its completed shards; an identical second run is up to date.",
    ),
    split: str = typer.Option(
        "train,val,test",
        "--split",
        metavar="<train,val,test>",
        help="The split to read, or a comma list of them.",
    ),
    tasks: str = typer.Option(
        "auto",
        "--tasks",
        metavar="<auto|all|STEM,...>",
        help="auto: every task whose query, qrels and pool files are present (the absent ones are "
        "named on stderr and in the report); all: the full 16-task release; or a comma list of task "
        "stems such as mscoco_task0,cirr_task7.",
    ),
    on_error: OnError = typer.Option(
        "fail",
        "--on-error",
        help="fail: stop at the first bad row with one line naming file, line and field (exit 2). "
        "skip: leave bad rows out, count them in the manifest and list them in OUT/rejected.jsonl.",
    ),
    rows_per_shard: int = typer.Option(100_000, "--rows-per-shard", help="Rows per Parquet shard."),
    force: bool = typer.Option(False, "--force", help="Redo even when OUT is up to date."),
) -> None:
    """Read the real M-BEIR layout (per-dataset train files, per-task val/test files, local and global
    pools, 5-column qrels, instructions TSV) into tables, with a validation report on stderr.

    A run killed midway resumes from its completed shards; an identical second run says "up to date".
    """
    from umarvel_cli.data.mbeir.reader import prepare_mbeir

    prepare_mbeir(
        root, out, splits=split, on_error=on_error, force=force, rows_per_shard=rows_per_shard, tasks=tasks
    )
