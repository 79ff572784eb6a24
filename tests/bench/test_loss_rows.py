"""The loss benchmark's row builder: ratios against the plain loss measured for the same shape."""

from __future__ import annotations

import pytest

from umarvel_cli.bench.loss import compare_rows


def fake_measure(impl: str, b: int, n: int, d: int) -> dict:
    scale = {"plain": 4.0, "fast": 1.0}[impl]
    return {"peak_extra_mib": scale * b, "workspace_mib": scale * b - 1, "ms": scale * d, "loss": scale}


def test_rows_hold_ratios_against_plain_per_shape():
    rows = compare_rows("dev", [(8, 48, 16), (16, 96, 32)], ("fast",), fake_measure)
    assert [(r["B"], r["impl"]) for r in rows] == [(8, "fast"), (16, "fast")]
    first = rows[0]
    assert first["plain_MiB"] == 32.0 and first["impl_MiB"] == 8.0
    assert first["mem_ratio"] == pytest.approx(0.25)
    assert first["workspace_ratio"] == pytest.approx(7 / 31)
    assert first["time_ratio"] == pytest.approx(0.25) and first["impl_ms"] == 16.0
    assert first["loss_diff"] == pytest.approx(3.0)


def test_cpu_measurements_have_no_workspace_or_loss_columns():
    def cpu_like(impl, b, n, d):
        return {"peak_extra_mib": 2.0 if impl == "plain" else 1.0, "ms": 10.0}

    (row,) = compare_rows("cpu", [(4, 24, 8)], ("fast",), cpu_like)
    assert "workspace_ratio" not in row and "loss_diff" not in row
    assert row["mem_ratio"] == 0.5 and row["time_ratio"] == 1.0
