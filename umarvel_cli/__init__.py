"""umarvel: the U-MARVEL recipe as an installable, resumable toolkit.

The Python face: `from umarvel_cli import Embedder` (imported on first use, so `umarvel --help`
stays fast).
"""

from __future__ import annotations

from typing import Any

from umarvel_cli.version import __version__

__all__ = ["Embedder", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Embedder":
        from umarvel_cli.models.embedder import Embedder

        return Embedder
    raise AttributeError(f"module 'umarvel_cli' has no attribute {name!r}")
