"""What readers produce: one thing to embed or score, before any model sees it.

Readers (M-BEIR tables, pairs, the demo) build `Record`s; the input pipeline in
`umarvel_cli.models.inputs` turns them into model inputs. This module imports nothing from `models/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

Role = Literal["query", "candidate"]
MODALITIES = ("text", "image", "image,text")


@dataclass
class Record:
    """One thing to embed. `image` is a path (resolved by the caller) or a PIL image."""

    id: str
    text: str | None = None
    image: str | Path | Image.Image | None = None
    instruction: str | None = None
    modality: str | None = None

    def resolved_modality(self) -> str:
        if self.modality is not None:
            return self.modality
        has_text = bool(self.text and self.text.strip())
        if self.image is not None:
            return "image,text" if has_text else "image"
        return "text"
