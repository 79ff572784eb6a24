"""Reading users' text files line by line with errors that name the line.

Invalid UTF-8, a CSV field over the csv module's limit and text that UTF-8 cannot store (a lone
surrogate from a JSON `\\ud800` escape) each become one `UmarvelError` naming file and line,
instead of a traceback from deep inside a decoder.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from umarvel_cli.errors import UmarvelError


def decoded_lines(fh: BinaryIO, path: Path, bom: bool = False) -> Iterator[str]:
    """The lines of a binary file as text; invalid UTF-8 raises with its line number."""
    for n, raw in enumerate(fh, 1):
        if bom and n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UmarvelError(f"not valid UTF-8 (byte {e.start} of the line)", file=path, line=n) from None


@contextlib.contextmanager
def csv_errors(path: Path, reader: Any) -> Iterator[None]:
    try:
        yield
    except csv.Error as e:
        raise UmarvelError(f"unreadable CSV ({e})", file=path, line=reader.line_num) from None


def iter_csv(reader: Any, path: Path) -> Iterable[list[str]]:
    """Rows of a csv reader; a csv error (e.g. a field over the size limit) names its line."""
    while True:
        with csv_errors(path, reader):
            row = next(reader, None)
        if row is None:
            return
        yield row


def is_storable(text: str) -> bool:
    """False when `text` holds characters UTF-8 cannot encode (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
