from __future__ import annotations

from typer.testing import CliRunner

from umarvel_cli.app import PIPELINE_ORDER, app

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ["prepare", "train", "mine", "rerank", "distill", "embed", "index", "search", "eval", "demo"]:
        assert name in result.output
    assert PIPELINE_ORDER[0] == "prepare"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "umarvel" in result.output


def test_our_kernels_package_is_not_mistaken_for_hf_kernels():
    from transformers.utils import import_utils

    assert not import_utils.is_kernels_available()
