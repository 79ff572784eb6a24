from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.retrieval.fixtures import tie_heavy_vectors, write_embeddings
from umarvel_cli.app import app

pytest.importorskip("faiss")
runner = CliRunner()


def test_index_cli_builds_and_reports(tmp_path):
    write_embeddings(tmp_path / "emb", [f"d{i}" for i in range(20)], tie_heavy_vectors(20))
    r = runner.invoke(
        app,
        ["index", "--candidates", str(tmp_path / "emb"), "--out", str(tmp_path / "idx"), "--device", "cpu"],
    )
    assert r.exit_code == 0, r.output
    assert "20 vectors, Flat on cpu" in r.output
    assert (tmp_path / "idx" / "index.faiss").is_file()
    assert (tmp_path / "idx" / "ids" / "part-00000.parquet").is_file()


def test_index_cli_bad_input_exits_2(tmp_path):
    r = runner.invoke(app, ["index", "--candidates", str(tmp_path / "none"), "--out", str(tmp_path / "idx")])
    assert r.exit_code == 2
    assert "no embeddings table here" in r.output
