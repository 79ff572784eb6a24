"""Progress people can read in a log: plain timed lines on stderr when it is not a terminal."""

from __future__ import annotations

import io
import re

from umarvel_cli import console
from umarvel_cli.console import PlainProgress, make_progress, track


def test_plain_lines_name_the_task_count_rate_and_eta():
    stream = io.StringIO()
    with PlainProgress("items", every=0, stream=stream) as progress:
        task = progress.add_task("embed queries (test)", total=10, rate="")
        progress.advance(task, 4)
        progress.update(task, advance=6, rate="loss 0.5000 lr 1.00e-04 τ 0.0500 12.0 samples/s")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("embed queries (test): 4/10 items (40%) ")
    assert re.search(r"[\d.]+ items/s elapsed \d\d:\d\d ETA \d\d:\d\d$", lines[0]), lines[0]
    # the last line once, at completion, with the task's own fields and no second rate
    assert lines[1].startswith("embed queries (test): 10/10 items (100%) loss 0.5000 lr 1.00e-04")
    assert "items/s" not in lines[1] and "ETA" not in lines[1] and len(lines) == 2


def test_lines_are_timed_not_per_update():
    stream = io.StringIO()
    with PlainProgress("rows", every=3600, stream=stream) as progress:
        task = progress.add_task("prepare pairs", total=None, rate="")
        for _ in range(1000):
            progress.advance(task)
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]  # only the closing line
    assert stream.getvalue().startswith("prepare pairs: 1,000 rows ")


def test_logs_get_plain_progress_and_track_reports_items(capsys, monkeypatch):
    assert not console.err_console.is_terminal  # pytest captures stderr
    assert isinstance(make_progress(), PlainProgress)
    assert list(track(range(5), 5, "index", unit="blocks")) == [0, 1, 2, 3, 4]
    assert "index: 5/5 blocks (100%)" in capsys.readouterr().err
    console.warn("eval: [3] candidates outside the pool")
    assert "warning: eval: [3] candidates outside the pool" in capsys.readouterr().err
