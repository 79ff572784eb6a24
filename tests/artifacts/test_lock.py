"""The output lock: one writer per folder, re-entrant in one process, gone with its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from umarvel_cli.artifacts.lock import LOCK_FILE, lock_output
from umarvel_cli.artifacts.stage import abandon_stages, finish_stage, open_stage_count, plan_stage
from umarvel_cli.errors import UmarvelError

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys; from umarvel_cli.artifacts.lock import lock_output; from pathlib import Path;"
    "lock_output(Path(sys.argv[1])); print('held', flush=True); sys.stdin.readline()"
)


def test_lock_is_reentrant_within_a_process(tmp_path):
    a = lock_output(tmp_path)
    b = lock_output(tmp_path)
    assert a is b and a.depth == 2
    b.release()
    a.release()
    assert (tmp_path / LOCK_FILE).read_text().strip().isdigit()


def test_another_process_holding_the_folder_is_named(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UmarvelError, match=f"being written by pid {holder.pid}"):
            plan_stage(tmp_path / ".", "s", {}, {})
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    finish_stage(plan_stage(tmp_path, "s", {}, {}), {})  # free again once the holder exited


def test_abandoned_fresh_stage_leaves_nothing(tmp_path):
    out = tmp_path / "o"
    before = open_stage_count()
    plan = plan_stage(out, "s", {}, {})
    (out / "shard").write_text("half")
    abandon_stages(clean=True, since=before)
    assert not out.exists()
    assert plan.lock is None


def test_abandon_after_ctrl_c_keeps_the_work(tmp_path):
    out = tmp_path / "o"
    before = open_stage_count()
    plan_stage(out, "s", {"a": 1}, {})
    (out / "shard").write_text("done")
    abandon_stages(clean=False, since=before)
    assert (out / "shard").exists() and (out / "_progress.json").exists()
    assert plan_stage(out, "s", {"a": 1}, {}).status == "resume"
