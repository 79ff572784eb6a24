"""Errors meant for people: one line naming where the input is wrong and what was expected.

The CLI turns any `UmarvelError` into that line on stderr and exit status 2 (no traceback unless
`--debug`). Library code raises these instead of printing, so it stays usable from Python.
"""

from __future__ import annotations

from pathlib import Path


class UmarvelError(Exception):
    """Bad input or a state the user must act on; exit status 2."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field
        self.expected = expected
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = []
        if where:
            parts.append(where)
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        text = ": ".join([*parts, self.message]) if parts else self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text.replace("\r", " ").replace("\n", " ")  # one line, whatever a library's message held


class SchemaError(UmarvelError):
    """A table on disk does not have the schema or schema version this package reads."""


class NotImplementedStage(UmarvelError):
    """A pipeline stage that a later release provides."""
