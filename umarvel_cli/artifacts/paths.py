"""Image references: paths relative to an images root, which must not escape it."""

from __future__ import annotations

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


def resolve_image(root: str | Path, rel: str) -> Path:
    """Absolute location of a stored relative image path, checked again at use."""
    rel = safe_relative(rel)
    return Path(root) / rel
