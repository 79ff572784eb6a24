"""The CLI's one error boundary: which failures are the user's to fix (one line, exit 2).

`UmarvelError` is raised on purpose by library code. A few failures of the system around the run
are the user's too and get the same one line: a read-only, full or forbidden `--out`, a path that
is missing or of the wrong kind, text that is not valid UTF-8. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import errno
import sys

from umarvel_cli.errors import UmarvelError

USER_ERRNOS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a path component is not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ELOOP: "too many levels of symbolic links (or a symlink where none is allowed)",
    errno.EFBIG: "file too large",
}


def as_user_error(exc: BaseException) -> UmarvelError | None:
    """The one-line error for `exc`, or None when it is a bug (then the traceback is shown)."""
    if isinstance(exc, UmarvelError):
        return exc
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        return UmarvelError(USER_ERRNOS[exc.errno], file=exc.filename)
    if isinstance(exc, UnicodeDecodeError):
        return UmarvelError(f"input is not valid UTF-8 ({exc.reason} at byte {exc.start})")
    if isinstance(exc, UnicodeEncodeError):
        return UmarvelError(
            f"text holds characters that cannot be stored as UTF-8 ({exc.reason}, e.g. a lone surrogate)"
        )
    return None


def open_stages() -> int:
    """How many stages are open before a command runs (only those it opens are its to abandon)."""
    stage = sys.modules.get("umarvel_cli.artifacts.stage")
    return stage.open_stage_count() if stage is not None else 0


def abandon_stages(clean: bool, since: int = 0) -> None:
    """Release the failed run's output locks; after a user error, drop what it half-wrote."""
    stage = sys.modules.get("umarvel_cli.artifacts.stage")
    if stage is not None:  # no stage was planned when it was never imported
        stage.abandon_stages(clean, since)
