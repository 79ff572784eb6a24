"""`umarvel mine` (also `mine-negatives`): hard negatives per training query, false negatives filtered."""

from __future__ import annotations

from pathlib import Path

import typer

from umarvel_cli.cli_options import NegativeSample, PoolScope, Split


def command(
    model: Path = typer.Option(
        ...,
        "--model",
        help="The model to mine with: a model folder or a finished `umarvel train` output (the mbeir stage).",
    ),
    data: Path = typer.Option(..., "--data", help="Tables from `umarvel prepare mbeir`."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the mined table, report.md/json, charts, manifest."
    ),
    split: Split = typer.Option("train", "--split", help="Queries to mine for; the pool is union_SPLIT."),
    pool: PoolScope = typer.Option(
        "local",
        "--pool",
        help="local: each task's rebuilt train pool (its datasets, its candidate modality); "
        "global: the whole union pool.",
    ),  # fmt: skip
    topk: int = typer.Option(100, "--topk", help="Candidates retrieved per query."),
    num_negatives: int = typer.Option(5, "--num-negatives", help="Negatives kept per query (k)."),
    rank_range: str = typer.Option(
        "1-100", "--range", metavar="<A-B>", help="Only ranks A-B are eligible (1-based, inclusive)."
    ),
    margin: str = typer.Option(
        "0.0",
        "--margin",
        metavar="<float|off>",
        help="Drop candidates scoring above pos_score - M (ST's absolute margin; the default 0 drops "
        "what outscores the positive; off disables).",
    ),
    max_score_ratio: str = typer.Option(
        "0.95",
        "--max-score-ratio",
        metavar="<ratio|off>",
        help="Drop candidates scoring above R x pos_score, 0 < R <= 1 (default: NV-Retriever's 0.95; "
        "off disables).",
    ),  # fmt: skip
    max_score: str = typer.Option(
        "1.0",
        "--max-score",
        metavar="<cosine|off>",
        help="Drop candidates above this cosine (the paper: 0.7; off disables).",
    ),
    same_modality: bool = typer.Option(
        False, "--same-modality", help="Keep only candidates of the task's candidate modality."
    ),
    sample: NegativeSample = typer.Option(
        "top", "--sample", help="top: the first k survivors; random: k drawn from them."
    ),
    random_tasks: str = typer.Option(
        "",
        "--random-tasks",
        metavar="<stems>",
        help="Comma-separated task stems (e.g. mscoco_task0) that take random negatives "
        "from the whole pool instead.",
    ),  # fmt: skip
    seed: int = typer.Option(0, "--seed", help="Seed of --sample random and of random negatives."),
    embeddings: Path | None = typer.Option(
        None,
        "--embeddings",
        help="Folder for (and reuse of) the query and pool embeddings (default OUT/embeddings).",
    ),
    force: bool = typer.Option(False, "--force", help="Mine again even when the output is up to date."),
) -> None:
    """Mine hard negatives: embed, search the pool, drop likely false negatives, keep k per query."""
    from umarvel_cli.mining import make_settings, optional_number, run_mine

    settings = make_settings(
        split=split,
        pool=pool,
        topk=topk,
        num_negatives=num_negatives,
        rank_range=rank_range,
        margin=optional_number(margin, "--margin"),
        max_score_ratio=optional_number(max_score_ratio, "--max-score-ratio"),
        max_score=optional_number(max_score, "--max-score"),
        same_modality=same_modality,
        sample=sample,
        random_tasks=random_tasks,
        seed=seed,
    )
    manifest = run_mine(model, data, out, settings, embeddings=embeddings, force=force)
    s = manifest.extra.get("summary", {})
    typer.echo(
        f"mine: {manifest.counts.get('queries', 0):,} queries, {s.get('negatives', 0):,} negatives, "
        f"{manifest.counts.get('short', 0):,} short of {num_negatives} -> {out}/report.md"
    )
