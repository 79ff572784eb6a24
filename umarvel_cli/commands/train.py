"""`umarvel train`: not implemented yet (a later issue builds it)."""

from __future__ import annotations

from umarvel_cli.errors import NotImplementedStage


def command() -> None:
    """Not implemented yet."""
    raise NotImplementedStage("`umarvel train` is not implemented yet")
