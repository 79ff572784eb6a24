"""What the Python API accepts to embed: strings (text), PIL images, paths (image files), dicts
({"text", "image", "instruction", "id"}) or `Record`s, turned into `Record`s.

A string is always text, as in sentence-transformers; pass a `pathlib.Path` (or {"image": "x.png"})
for an image file, so that a caption that happens to look like a file name is never opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError

DICT_KEYS = ("id", "text", "image", "instruction")


def to_record(item: Any, index: int, instruction: str | None = None) -> Record:
    """One item as a Record; `instruction` applies unless the item brings its own."""
    item_id = f"item-{index}"
    if isinstance(item, Record):
        if instruction is not None and item.instruction is None:
            return Record(item.id, item.text, item.image, instruction, item.modality)
        return item
    if isinstance(item, str):
        return Record(item_id, text=item, instruction=instruction)
    if isinstance(item, (Path, Image.Image)):
        return Record(item_id, image=_image(item, index), instruction=instruction)
    if isinstance(item, dict):
        unknown = sorted(set(item) - set(DICT_KEYS))
        if unknown:
            raise UmarvelError(
                f"item {index}: unknown key {unknown[0]!r}", expected="keys among " + ", ".join(DICT_KEYS)
            )
        text, image = item.get("text"), item.get("image")
        if text is None and image is None:
            raise UmarvelError(f"item {index}: neither 'text' nor 'image'", expected="at least one of them")
        return Record(
            str(item.get("id", item_id)),
            text=text,
            image=None if image is None else _image(image, index),
            instruction=item.get("instruction", instruction),
        )
    raise UmarvelError(
        f"item {index}: cannot embed a {type(item).__name__}",
        expected="a string (text), a PIL image, a pathlib.Path to an image, a dict or a Record",
    )


def _image(value: Any, index: int) -> str | Path | Image.Image:
    if isinstance(value, Image.Image):
        return value
    path = Path(value)
    if not path.is_file():
        raise UmarvelError(f"item {index}: image file not found", file=path)
    return path


def to_records(items: Iterable[Any], instruction: str | None = None) -> list[Record]:
    if isinstance(items, (str, dict, Path, Image.Image, Record)):
        items = [items]  # one item given alone
    return [to_record(item, i, instruction) for i, item in enumerate(items)]
