"""Append-only logs: the line a kill tore is dropped; damage elsewhere is an error naming its line."""

from __future__ import annotations

import pytest

from umarvel_cli.artifacts.jsonlog import read_log, rewrite_log
from umarvel_cli.errors import UmarvelError


def test_torn_last_line_is_dropped(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert read_log(log) == [{"step": 1}, {"step": 2}]
    rewrite_log(log, read_log(log))
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_damaged_middle_line_names_it(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_bytes(b'{"step": 1}\n{"st\xff\n{"step": 3}\n')
    with pytest.raises(UmarvelError, match=r"train_log.jsonl:2"):
        read_log(log)


def test_missing_log_is_empty(tmp_path):
    assert read_log(tmp_path / "none.jsonl") == []
