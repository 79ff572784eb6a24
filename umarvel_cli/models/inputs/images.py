"""Image loading for the input pipeline: decode now, read the header only, or decode in the background.

Every image of every stage is opened here, so a missing or unreadable file gives the same one-line
error naming the file and the item, whichever path (eager, deferred, decoded ahead) reached it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.image_processor import ImagePatcher

ImageSource = str | Path | Image.Image


@dataclass
class LazyImage:
    """An image whose size is known (read from its header) but whose pixels are decoded later."""

    source: ImageSource
    item_id: str | None
    size: tuple[int, int]  # (width, height)

    def load(self) -> Image.Image:
        return load_image(self.source, self.item_id)


def load_image(image: ImageSource, item_id: str | None = None) -> Image.Image:
    """Open an image as RGB, with a one-line error naming the file when it is missing or unreadable."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    path = Path(image)
    if not path.is_file():
        raise UmarvelError(f"image file not found (item {item_id})", file=path, field="image")
    try:
        with Image.open(path) as im:
            _check_pixels(im.size, path, item_id)
            im.load()  # decoded now; leaving the block closes only the file
            return im if im.mode == "RGB" else im.convert("RGB")  # no copy of an RGB file's pixels
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UmarvelError(f"unreadable image (item {item_id}): {e}", file=path, field="image") from e


def peek_image(image: ImageSource, item_id: str | None = None) -> LazyImage:
    """The image's size from its header only (the file is checked to exist and be an image)."""
    if isinstance(image, Image.Image):
        return LazyImage(image, item_id, image.size)
    path = Path(image)
    if not path.is_file():
        raise UmarvelError(f"image file not found (item {item_id})", file=path, field="image")
    try:
        with Image.open(path) as im:
            size = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UmarvelError(f"unreadable image (item {item_id}): {e}", file=path, field="image") from e
    _check_pixels(size, path, item_id)
    return LazyImage(path, item_id, size)


MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # 8192 x 8192; a decompression bomb claims far more
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # PIL's own guard (warning, then error at 2x) as a backstop


def _check_pixels(size: tuple[int, int], path: Path, item_id: str | None) -> None:
    """Refuse an image whose header claims more pixels than any real input has (decompression bomb)."""
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise UmarvelError(
            f"image of {size[0]}x{size[1]} pixels is over the limit of {MAX_IMAGE_PIXELS:,} (item {item_id})",
            file=path,
            field="image",
            expected="an image of at most 8192x8192 pixels",
        )


class DecodeAhead:
    """Decodes and resizes images in a background thread while the caller formats their items.

    PIL decodes and resizes without holding the GIL, so on a machine whose other cores would wait
    for the (mostly single-threaded) formatting, part of the collator's work is done by then.
    `jobs` are (key, image, item id) in the order they should be decoded; the first `limit` are
    (bounded memory). `finish` stops the thread and returns {key: resized uint8 image}, exactly what
    the collator would have computed. An image that fails here is simply left out: the collator
    decodes it again and reports it in order.
    """

    def __init__(
        self, patcher: ImagePatcher, jobs: Sequence[tuple[Hashable, ImageSource, str | None]], limit: int
    ) -> None:
        self._patcher = patcher
        self._jobs = list(jobs[:limit])
        self._done: dict[Hashable, np.ndarray] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="umarvel-decode-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for key, image, item_id in self._jobs:
            if self._stop.is_set():
                return
            try:
                self._done[key] = self._patcher.resize(load_image(image, item_id))
            except Exception:  # noqa: BLE001 - the collator decodes it again and raises the real error
                continue

    def finish(self) -> dict[Hashable, np.ndarray]:
        self._stop.set()
        self._thread.join()
        return self._done
