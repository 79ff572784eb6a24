"""`umarvel prepare pairs`: not implemented yet."""

from __future__ import annotations

from umarvel_cli.errors import NotImplementedStage


def command() -> None:
    """Not implemented yet."""
    raise NotImplementedStage("`umarvel prepare pairs` is not implemented yet")
