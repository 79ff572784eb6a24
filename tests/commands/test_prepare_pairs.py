"""`umarvel prepare pairs`: reads the demo corpora; bad rows give one line and exit 2, or are skipped."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from umarvel_cli.app import app
from umarvel_cli.artifacts.shards import read_table

runner = CliRunner()


def test_reads_the_demo_corpora(demo_root, tmp_path):
    nli = runner.invoke(
        app,
        [
            "prepare",
            "pairs",
            "--input",
            str(demo_root / "pairs/nli.csv"),
            "--kind",
            "nli",
            "--out",
            str(tmp_path / "n"),
        ],
    )
    assert nli.exit_code == 0, nli.output
    assert nli.stdout.strip() == f"{tmp_path / 'n'}: 64 nli pairs, 0 rejected"
    caps = runner.invoke(
        app,
        ["prepare", "pairs", "--input", str(demo_root / "pairs/captions.jsonl"), "--kind", "caption",
         "--images-root", str(demo_root / "pairs"), "--out", str(tmp_path / "c")],
    )  # fmt: skip
    assert caps.exit_code == 0, caps.output
    table = read_table(tmp_path / "c", "pairs")
    assert table.num_rows == 48 and set(table.column("kind").to_pylist()) == {"caption"}


def test_bad_row_exits_2_with_one_line_naming_file_line_and_field(tmp_path):
    source = tmp_path / "nli.csv"
    source.write_text("sent0,sent1,hard_neg\na,b,c\nd,,f\n")
    result = runner.invoke(
        app, ["prepare", "pairs", "--input", str(source), "--kind", "nli", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert (
        result.stderr.strip().splitlines()[-1] == f"error: {source}:3: field 'sent1': empty or missing text"
    )


def test_skip_writes_rejected_jsonl(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"png")
    source = tmp_path / "caps.jsonl"
    source.write_text(
        json.dumps({"image": "ok.png", "caption": "fine"})
        + "\n"
        + json.dumps({"image": "nope.png", "caption": "x"})
        + "\n"
    )
    out = tmp_path / "o"
    args = [
        "prepare",
        "pairs",
        "--input",
        str(source),
        "--kind",
        "caption",
        "--out",
        str(out),
        "--on-error",
        "skip",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{out}: 1 caption pairs, 1 rejected"
    rejected = json.loads((out / "rejected.jsonl").read_text())
    assert (rejected["line"], rejected["field"]) == (2, "image")


def test_unknown_kind_exits_2(tmp_path):
    result = runner.invoke(
        app, ["prepare", "pairs", "--input", "x", "--kind", "video", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "'--kind': 'video' is not one of 'nli', 'caption'" in result.stderr
