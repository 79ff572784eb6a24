"""One writer per output folder: an `flock`ed `.umarvel.lock` inside it, held for the whole stage.

A second process that wants the same folder fails at once with the holder's pid instead of
interleaving shards with it. The lock is re-entrant within one process (a stage that re-plans its
own folder, the demo running stage after stage), and the kernel drops it when the holder dies, so
a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from umarvel_cli.errors import UmarvelError

LOCK_FILE = ".umarvel.lock"

_held: dict[str, OutputLock] = {}


@dataclass
class OutputLock:
    path: Path
    fd: int
    depth: int = 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth > 0:
            return
        _held.pop(str(self.path), None)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)

    def remove(self) -> None:
        """Delete the lock file (only for a folder this process created and is about to drop)."""
        self.path.unlink(missing_ok=True)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


def lock_output(out: Path) -> OutputLock:
    """Take the folder's lock (creating the folder's lock file); exit-2 error when someone holds it."""
    path = (out / LOCK_FILE).resolve()
    held = _held.get(str(path))
    if held is not None:
        held.depth += 1
        return held
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UmarvelError("lock file is a symlink; refusing to follow it", file=path) from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UmarvelError(
            f"is being written by {_holder(path)}",
            file=out,
            expected="one writer per --out folder; wait for it to finish or pick another folder",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    lock = OutputLock(path, fd)
    _held[str(path)] = lock
    return lock
