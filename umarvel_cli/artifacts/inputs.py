"""A stage reads another stage's output only when that output is complete.

Complete means: its `manifest.json` is there (written last), it was written by a stage that makes
what this input needs, and its tables hold the rows the manifest counted. A run killed after 3
shards (no manifest) or a folder someone else added shards to (counts differ) is refused with one
line naming the folder, instead of being read as if it were the whole thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from umarvel_cli.artifacts.manifest import Manifest, read_manifest
from umarvel_cli.artifacts.shards import count_rows
from umarvel_cli.errors import UmarvelError

PROGRESS = "_progress.json"

# stage -> {table: the manifest count that must equal its rows}
TABLE_COUNTS: dict[str, dict[str, str]] = {
    "prepare-mbeir": {t: t for t in ("queries", "candidates", "pools", "qrels", "instructions")},
    "prepare-pairs": {"pairs": "pairs"},
    "embed": {"embeddings": "embedded"},
    "index": {"ids": "vectors"},
    "search": {"run": "rows"},
}


def require_complete(path: str | Path, stages: Sequence[str] | None, flag: str) -> Manifest:
    """The manifest of a finished output of one of `stages` at `path`, its table counts checked."""
    path = Path(path)
    wanted = " or ".join(f"`{s}`" for s in stages) if stages else "a umarvel stage"
    if not path.is_dir():
        raise UmarvelError(
            "folder not found", file=path, field=flag, expected=f"the --out folder of {wanted}"
        )
    manifest = read_manifest(path)
    if manifest is None:
        state = (
            "an unfinished run (interrupted or still running: _progress.json, no manifest.json)"
            if (path / PROGRESS).is_file()
            else "no manifest.json: not a finished umarvel output"
        )
        raise UmarvelError(state, file=path, field=flag, expected=f"the complete --out folder of {wanted}")
    if stages and manifest.stage not in stages:
        raise UmarvelError(
            f"written by stage '{manifest.stage}'", file=path, field=flag, expected=f"the output of {wanted}"
        )
    for table, key in TABLE_COUNTS.get(manifest.stage, {}).items():
        if key not in manifest.counts:
            continue
        rows = count_rows(path, table)
        if rows != int(manifest.counts[key]):
            raise UmarvelError(
                f"table '{table}' holds {rows:,} rows but its manifest counted {manifest.counts[key]:,} "
                "(changed after the stage finished?)",
                file=path,
                field=flag,
                expected="an output as its stage wrote it; run that stage again with --force",
            )
    return manifest
