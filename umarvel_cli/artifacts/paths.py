"""Image references: paths relative to an images root, which must not escape it."""

from __future__ import annotations

import functools
import os
from pathlib import Path, PurePosixPath

from umarvel_cli.errors import UmarvelError


def safe_relative(
    path: str, *, file: str | Path | None = None, line: int | None = None, field: str = "image"
) -> str:
    """Normalise a relative image path; reject absolute paths and any `..` component."""
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise UmarvelError(
            f"absolute image path {path!r} is not allowed",
            file=file,
            line=line,
            field=field,
            expected="a path relative to the images root",
        )
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if any(p == ".." for p in parts):
        raise UmarvelError(
            f"image path {path!r} escapes the images root",
            file=file,
            line=line,
            field=field,
            expected="a path relative to the images root without '..'",
        )
    return str(PurePosixPath(*parts)) if parts else ""


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


def resolve_image(root: str | Path, rel: str) -> Path:
    """Absolute location of a stored relative image path, checked again at use: the real path (links
    followed) must stay under the root's real path, so a symlink cannot reach a file outside it."""
    rel = safe_relative(rel)
    path = Path(root) / rel
    real_root = _real_root(str(root))
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UmarvelError(
            f"image path {rel!r} is a link that leads outside the images root",
            file=path,
            field="image",
            expected=f"files under {real_root}",
        )
    return path
