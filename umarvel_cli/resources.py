"""Where the package's declarative data lives (`data_manifests/`), for every reader of it."""

from __future__ import annotations

from pathlib import Path


def manifests_dir() -> Path:
    """`data_manifests/` of the source tree, or its copy inside an installed wheel."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg / "data_manifests", pkg.parent / "data_manifests"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("data_manifests/ not found next to the umarvel_cli package")
