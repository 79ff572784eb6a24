"""Atomic replacement of output files without following anything a stranger planted.

A temporary file is created next to its target under a unique name with `O_CREAT|O_EXCL|O_NOFOLLOW`
(a symlink or file already at that name is never opened), and renamed over the target only when
the target is absent or a regular file: a symlink, FIFO or device at the target (`/dev/stdout`)
is never replaced. `-` as a target means standard output and is written directly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from umarvel_cli.errors import UmarvelError

STDIO = "-"
TMP_MARK = ".umarvel-tmp-"


def is_stdio(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDIO


def temp_name(target: Path) -> Path:
    """A fresh name next to `target` that no earlier run and no attacker can have predicted."""
    return target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(8)}")


def is_temp_name(name: str) -> bool:
    return TMP_MARK in name


def create_temp_file(target: Path) -> tuple[Path, int]:
    """Create and open a new, empty temporary file for `target`; never follows or reuses a path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):
        tmp = temp_name(target)
        try:
            return tmp, os.open(tmp, flags, 0o644)
        except FileExistsError:
            continue
    raise UmarvelError("could not create a temporary file", file=target.parent)


def create_temp_dir(target: Path) -> Path:
    """A new, empty temporary folder for `target` (mkdir fails on anything already there)."""
    for _ in range(16):
        tmp = temp_name(target)
        try:
            tmp.mkdir(mode=0o755)
            return tmp
        except FileExistsError:
            continue
    raise UmarvelError("could not create a temporary folder", file=target.parent)


def check_replaceable(target: Path, folder: bool = False) -> None:
    """Refuse to rename over anything but a regular file (`folder`: a real folder), e.g. a link,
    a FIFO, a device, or a folder where a file goes."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if folder and stat.S_ISDIR(st.st_mode):
        return
    if not folder and stat.S_ISREG(st.st_mode):
        return
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a link, FIFO or device)"
    raise UmarvelError(
        f"is {kind}; refusing to replace it",
        file=target,
        expected="a real folder" if folder else "a regular file path, or - for standard output",
    )


def replace_into(tmp: Path, target: Path) -> None:
    """Rename a finished temporary file or folder over `target` (checked first, see module doc)."""
    folder = tmp.is_dir() and not tmp.is_symlink()
    check_replaceable(target, folder)
    if folder and target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file object whose contents appear at `path` only when the block ends cleanly.

    `-` yields standard output's buffer (written directly, never renamed).
    """
    if is_stdio(path):
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(target)
    tmp, fd = create_temp_file(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        replace_into(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temps(folder: Path) -> None:
    """Drop temporary files a killed run left (only our own unique names, never a symlink's target)."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if is_temp_name(p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
