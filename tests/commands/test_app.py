from __future__ import annotations

import re

from typer.testing import CliRunner

from umarvel_cli import __version__
from umarvel_cli.app import PIPELINE_ORDER, app

runner = CliRunner()


def test_help_lists_every_command_once_in_pipeline_order():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = result.output.split("Commands", 1)[1]
    listed = re.findall(r"^│ ([a-z][a-z-]*) ", commands, flags=re.M)
    registered = {c.name for c in app.registered_commands if not c.hidden} | {
        g.name for g in app.registered_groups
    }
    assert sorted(listed) == sorted(registered)  # every command, each once
    assert listed == sorted(listed, key=PIPELINE_ORDER.index)  # in the order the pipeline runs them
    assert listed[:3] == ["prepare", "train", "mine"] and "eval" in listed


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"umarvel {__version__}\n"


def test_our_kernels_package_is_not_mistaken_for_hf_kernels():
    from transformers.utils import import_utils

    assert not import_utils.is_kernels_available()
