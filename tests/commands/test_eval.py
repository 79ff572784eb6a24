from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.evaluation.fixtures import write_prepared
from umarvel_cli.app import app

runner = CliRunner()


def test_eval_mbeir_cli_with_a_trec_run(tmp_path):
    data = write_prepared(tmp_path / "data")
    run = tmp_path / "r.trec"
    run.write_text("9:q0 Q0 9:c0 1 0.9 s\n2:q0 Q0 2:c2 1 0.9 s\n4:q0 Q0 4:c1 1 0.9 s\n")
    out = tmp_path / "eval"
    r = runner.invoke(
        app,
        [
            "eval",
            "mbeir",
            "--data",
            str(data),
            "--split",
            "test",
            "--pool",
            "local",
            "--run",
            str(run),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "mscoco_task0\tRecall@5\t0.5000\t(2 queries)" in r.output
    assert "mean\t\t0.3333\t(over 3 tasks)" in r.output
    for name in ("metrics.json", "report.md", "per_task.csv", "run.trec", "scores.png", "manifest.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["pool"] == "local"


def test_eval_mbeir_cli_errors_exit_2(tmp_path):
    data = write_prepared(tmp_path / "data")
    run = tmp_path / "r.trec"
    run.write_text("nope Q0 9:c0 1 0.9 s\n")
    args = ["eval", "mbeir", "--data", str(data), "--out", str(tmp_path / "o")]
    r = runner.invoke(app, [*args, "--run", str(run)])
    assert r.exit_code == 2
    assert "query id(s) of the run are not test queries" in r.output and "'nope'" in r.output
    r = runner.invoke(app, [*args, "--run", str(run), "--model", str(tmp_path)])
    assert r.exit_code == 2 and "exactly one of --model or --run" in r.output
    r = runner.invoke(app, [*args, "--run", str(run), "--pool", "galaxy"])
    assert r.exit_code == 2 and "'galaxy' is not one of 'local', 'global'" in r.output
