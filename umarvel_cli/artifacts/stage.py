"""Decide whether a stage is up to date, resumes, or (re)starts, and finish it with its manifest.

The contract: same inputs and parameters and a manifest present -> "up to date", nothing is done;
`force` redoes; a run killed midway left `_progress.json` and its completed shards, and continues
from them when the parameters are the same. A folder that holds something else is never wiped, not even with `force`; one process
writes a folder at a time (`artifacts/lock.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from umarvel_cli.artifacts.atomic import atomic_write_text, remove_stale_temps
from umarvel_cli.artifacts.lock import LOCK_FILE, OutputLock, lock_output
from umarvel_cli.artifacts.manifest import MANIFEST, Manifest, read_manifest, write_manifest
from umarvel_cli.errors import UmarvelError

PROGRESS = "_progress.json"
OUTPUTS_KEY = "outputs"
Status = Literal["fresh", "up_to_date", "resume", "redo"]

_open_plans: list[StagePlan] = []


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
    lock: OutputLock | None = None
    created: bool = False

    @property
    def resume(self) -> bool:
        return self.status == "resume"

    @property
    def up_to_date(self) -> bool:
        return self.status == "up_to_date"


def _clear(out: Path, keep: tuple[str, ...] = ()) -> None:
    for child in out.iterdir():
        if child.name == LOCK_FILE or child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def refuse_out_over_inputs(out: Path, input_paths: Iterable[str | Path]) -> None:
    """`--out` must not be, or contain, an input of the same command (a redo would delete it)."""
    real_out = Path(os.path.realpath(out))
    for p in input_paths:
        real = Path(os.path.realpath(p))
        if real == real_out or real_out in real.parents:
            raise UmarvelError(
                f"holds an input of this command ({p}); writing there could delete it",
                file=out,
                field="--out",
                expected="an output folder outside every input",
            )


def _missing_outputs(manifest: Manifest) -> list[str]:
    return [p for p in manifest.extra.get(OUTPUTS_KEY) or [] if not Path(p).exists()]


def _is_empty(out: Path) -> bool:
    return not any(child.name != LOCK_FILE for child in out.iterdir())


def plan_stage(
    out: str | Path,
    stage: str,
    params: dict[str, Any],
    inputs: dict[str, str],
    force: bool = False,
    keep: tuple[str, ...] = (),
    input_paths: Iterable[str | Path] = (),
) -> StagePlan:
    """Look at `out` and decide; prepares the folder (clears it on redo, marks progress on start).

    `keep` names children of `out` a redo leaves in place: caches that carry their own manifests
    (the embeddings an evaluation reuses when only its options change). The folder stays locked
    against other writers until `finish_stage` (or `abandon_stages`).
    """
    out = Path(out)
    refuse_out_over_inputs(out, input_paths)
    if out.exists() and not out.is_dir():
        raise UmarvelError("is not a folder", file=out, field="--out", expected="a folder path")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    had_lock_file = (out / LOCK_FILE).exists()
    lock = lock_output(out)
    try:
        plan = _decide(out, stage, params, inputs, force)
    except BaseException:
        if not had_lock_file:  # a refused run leaves the folder as it found it
            lock.remove()
        lock.release()
        if created and _is_empty(out):
            out.rmdir()
        raise
    plan.lock, plan.created = lock, created
    for stale in [p for p in _open_plans if p.out.resolve() == out.resolve()]:
        _close(stale)  # an earlier plan of this folder in this process (interrupted in-process)
    if plan.up_to_date:
        lock.release()
        return plan
    _open_plans.append(plan)  # from here on a failure is the error boundary's to clean up
    remove_stale_temps(out)
    if plan.status == "redo":
        _clear(out, keep)
    atomic_write_text(out / PROGRESS, json.dumps({"key": _key(stage, params, inputs), "stage": stage}) + "\n")
    return plan


def _decide(out: Path, stage: str, params: dict[str, Any], inputs: dict[str, str], force: bool) -> StagePlan:
    key = _key(stage, params, inputs)
    manifest = read_manifest(out)
    progress_path = out / PROGRESS

    if manifest is not None:
        if manifest.stage != stage:
            raise UmarvelError(
                f"holds the output of stage '{manifest.stage}'",
                file=out,
                expected=f"an empty folder or a '{stage}' output",
            )
        same = _key(stage, manifest.params, manifest.inputs) == key
        missing = _missing_outputs(manifest) if same else []
        if same and not force and not missing:
            return StagePlan(out, stage, params, inputs, "up_to_date", "same inputs and parameters")
        status: Status = "redo"
        reason = (
            "--force"
            if same and force
            else f"output {missing[0]} is missing"
            if missing
            else "inputs or parameters changed"
        )
    elif progress_path.is_file():
        try:
            previous = json.loads(progress_path.read_text(encoding="utf-8")).get("key")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            previous = None
        if previous == key and not force:
            return StagePlan(out, stage, params, inputs, "resume", "continuing an interrupted run")
        status, reason = "redo", ("--force" if previous == key else "an interrupted run had other parameters")
    elif not _is_empty(out):
        raise UmarvelError(
            "folder is not empty and is not an umarvel output (no manifest.json or _progress.json); "
            "refusing to overwrite it, even with --force",
            file=out,
            expected="an empty or new folder",
        )
    else:
        status, reason = "fresh", "new output"
    return StagePlan(out, stage, params, inputs, status, reason)


def finish_stage(
    plan: StagePlan,
    counts: dict[str, int],
    extra: dict[str, Any] | None = None,
    outputs: Iterable[str | Path] = (),
) -> Manifest:
    """Write the manifest (last), drop the progress marker and the folder's lock.

    `outputs` are files outside the folder the stage also wrote (a TREC file): a rerun that finds
    one missing redoes the stage instead of saying "up to date".
    """
    extra = dict(extra or {})
    declared = [str(p) for p in outputs]
    if declared:
        extra[OUTPUTS_KEY] = declared
    manifest = Manifest(stage=plan.stage, params=plan.params, inputs=plan.inputs, counts=counts, extra=extra)
    write_manifest(plan.out, manifest)
    (plan.out / PROGRESS).unlink(missing_ok=True)
    _close(plan)
    return manifest


def _close(plan: StagePlan) -> None:
    if plan in _open_plans:
        _open_plans.remove(plan)
    if plan.lock is not None:
        plan.lock.release()
        plan.lock = None


def open_output(out: str | Path, stage: str) -> StagePlan:
    """Lock `out` for a stage that manages its own files (no progress marker, no redo).

    A user error before `close_output` drops the folder again when it was new or empty.
    """
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_output(out)
    status: Status = "fresh" if _is_empty(out) else "resume"
    plan = StagePlan(out, stage, {}, {}, status, "own files", lock, created)
    _open_plans.append(plan)
    return plan


def close_output(plan: StagePlan) -> None:
    _close(plan)


def open_stage_count() -> int:
    return len(_open_plans)


def abandon_stages(clean: bool, since: int = 0) -> None:
    """Called by the CLI's error boundary when a stage fails.

    `clean` (a user error: bad input, full disk): a stage that started from an empty folder is
    put back as it was, so a refused run leaves no `_progress.json`, config or shard behind.
    Otherwise (ctrl-C) completed work stays for resume. Either way the locks are released.
    """
    for plan in reversed(list(_open_plans[since:])):
        lock = plan.lock
        if clean and plan.status in ("fresh", "redo") and plan.out.is_dir():
            _clear(plan.out)
            if lock is not None:
                lock.remove()
            _close(plan)
            if plan.created:
                plan.out.rmdir()
            continue
        _close(plan)


__all__ = ["MANIFEST", "PROGRESS", "StagePlan", "abandon_stages", "finish_stage", "plan_stage"]
