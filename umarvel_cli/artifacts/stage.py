"""Decide whether a stage is up to date, resumes, or (re)starts, and finish it with its manifest.

The contract: same inputs and parameters and a manifest present -> "up to date", nothing is done;
`force` redoes; a run killed midway left `_progress.json` and its completed shards, and continues
from them when the parameters are the same. A folder that holds something else is never wiped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from umarvel_cli.artifacts.manifest import (
    MANIFEST,
    Manifest,
    atomic_write_text,
    read_manifest,
    write_manifest,
)
from umarvel_cli.errors import UmarvelError

PROGRESS = "_progress.json"
Status = Literal["fresh", "up_to_date", "resume", "redo"]


def _key(stage: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    blob = json.dumps({"stage": stage, "params": params, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StagePlan:
    out: Path
    stage: str
    params: dict[str, Any]
    inputs: dict[str, str]
    status: Status
    reason: str

    @property
    def resume(self) -> bool:
        return self.status == "resume"

    @property
    def up_to_date(self) -> bool:
        return self.status == "up_to_date"


def _clear(out: Path, keep: tuple[str, ...] = ()) -> None:
    for child in out.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def plan_stage(
    out: str | Path,
    stage: str,
    params: dict[str, Any],
    inputs: dict[str, str],
    force: bool = False,
    keep: tuple[str, ...] = (),
) -> StagePlan:
    """Look at `out` and decide; prepares the folder (clears it on redo, marks progress on start).

    `keep` names children of `out` a redo leaves in place: caches that carry their own manifests
    (the embeddings an evaluation reuses when only its options change).
    """
    out = Path(out)
    key = _key(stage, params, inputs)
    manifest = read_manifest(out) if out.is_dir() else None
    progress_path = out / PROGRESS

    if manifest is not None:
        if manifest.stage != stage:
            raise UmarvelError(
                f"holds the output of stage '{manifest.stage}'",
                file=out,
                expected=f"an empty folder or a '{stage}' output",
            )
        same = _key(stage, manifest.params, manifest.inputs) == key
        if same and not force:
            return StagePlan(out, stage, params, inputs, "up_to_date", "same inputs and parameters")
        status: Status = "redo"
        reason = "--force" if same else "inputs or parameters changed"
    elif progress_path.is_file():
        try:
            previous = json.loads(progress_path.read_text()).get("key")
        except json.JSONDecodeError:
            previous = None
        if previous == key and not force:
            return StagePlan(out, stage, params, inputs, "resume", "continuing an interrupted run")
        status, reason = "redo", ("--force" if previous == key else "an interrupted run had other parameters")
    elif out.is_dir() and any(out.iterdir()):
        if not force:
            raise UmarvelError(
                "folder is not empty and is not an umarvel output; refusing to overwrite it",
                file=out,
                expected="an empty or new folder, or --force",
            )
        status, reason = "redo", "--force"
    else:
        status, reason = "fresh", "new output"

    out.mkdir(parents=True, exist_ok=True)
    if status == "redo":
        _clear(out, keep)
    atomic_write_text(progress_path, json.dumps({"key": key, "stage": stage}) + "\n")
    return StagePlan(out, stage, params, inputs, status, reason)


def finish_stage(plan: StagePlan, counts: dict[str, int], extra: dict[str, Any] | None = None) -> Manifest:
    """Write the manifest (last) and drop the progress marker."""
    manifest = Manifest(
        stage=plan.stage, params=plan.params, inputs=plan.inputs, counts=counts, extra=extra or {}
    )
    write_manifest(plan.out, manifest)
    (plan.out / PROGRESS).unlink(missing_ok=True)
    return manifest


__all__ = ["MANIFEST", "PROGRESS", "StagePlan", "finish_stage", "plan_stage"]
