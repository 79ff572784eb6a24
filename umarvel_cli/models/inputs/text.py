"""Text cleaning shared by every input (UniIR's `format_string`), so train and eval see the same strings."""

from __future__ import annotations

END_PUNCTUATION = (".", "?", "!")


def format_string(text: str) -> str:
    """Strip, drop carriage returns and surrounding quotes, capitalise the first letter, end with punctuation.

    Empty input stays empty (an image-only item must not become ".").
    """
    s = text.strip().replace("\r", "").strip('"').strip()
    if not s:
        return ""
    s = s[0].upper() + s[1:]
    if not s.endswith(END_PUNCTUATION):
        s += "."
    return s
