"""Draw an item as a small PNG with pillow, deterministically (same item and jitter → same bytes)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageDraw

from umarvel_cli.data.demo.world import BACKGROUNDS, COLOURS, POSITIONS, SIZES, Item, Jitter

CANVAS = 56
_OFFSET = 13  # how far left/right/top/bottom moves the centre, in pixels


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    def ring(n: int, radius: float, start: float) -> list[tuple[float, float]]:
        return [
            (
                cx + radius * math.cos(start + 2 * math.pi * k / n),
                cy + radius * math.sin(start + 2 * math.pi * k / n),
            )
            for k in range(n)
        ]

    if shape == "triangle":
        return ring(3, r, -math.pi / 2)
    if shape == "diamond":
        return ring(4, r, -math.pi / 2)
    if shape == "hexagon":
        return ring(6, r, 0.0)
    if shape == "star":
        outer, inner = ring(5, r, -math.pi / 2), ring(5, r * 0.45, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    raise ValueError(shape)


def _mask(item: Item, cx: float, cy: float) -> Image.Image:
    r = SIZES[item.size]
    mask = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(mask)
    box = (cx - r, cy - r, cx + r, cy + r)
    if item.shape == "circle":
        draw.ellipse(box, fill=255)
    elif item.shape == "ring":
        draw.ellipse(box, fill=255)
        inner = r * 0.55
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif item.shape == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=255)
    elif item.shape == "cross":
        w = max(2.0, r * 0.35)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
    else:
        draw.polygon(_polygon(item.shape, cx, cy, r), fill=255)
    return mask


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The second colour of a pattern: white on dark colours, a dark shade on light ones."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (250, 250, 250) if luma < 150 else (60, 60, 60)


def _fill(item: Item) -> Image.Image:
    base = COLOURS[item.colour]
    other = _contrast(base)
    img = Image.new("RGB", (CANVAS, CANVAS), base)
    if item.texture == "solid":
        return img
    draw = ImageDraw.Draw(img)
    if item.texture == "striped":
        for x in range(-CANVAS, CANVAS, 6):
            draw.line((x, 0, x + CANVAS, CANVAS), fill=other, width=2)
    elif item.texture == "dotted":
        for y in range(1, CANVAS, 5):
            for x in range(1 + (y // 5 % 2) * 2, CANVAS, 5):
                draw.ellipse((x, y, x + 2, y + 2), fill=other)
    elif item.texture == "checkered":
        for y in range(0, CANVAS, 4):
            for x in range((y // 4 % 2) * 4, CANVAS, 8):
                draw.rectangle((x, y, x + 3, y + 3), fill=other)
    return img


def render(item: Item, jitter: Jitter = Jitter()) -> Image.Image:
    """The item on its background: a vertical gradient, brightness shifted by the jitter."""
    bg = BACKGROUNDS[item.background]
    img = Image.new("RGB", (CANVAS, CANVAS))
    draw = ImageDraw.Draw(img)
    for y in range(CANVAS):
        shade = jitter.light + (y - CANVAS // 2) // 4
        draw.line((0, y, CANVAS, y), fill=tuple(max(0, min(255, c + shade)) for c in bg))
    ox, oy = POSITIONS[item.position]
    cx = CANVAS / 2 + ox * _OFFSET + jitter.dx
    cy = CANVAS / 2 + oy * _OFFSET + jitter.dy
    img.paste(_fill(item), (0, 0), _mask(item, cx, cy))
    return img


def png_bytes(item: Item, jitter: Jitter = Jitter()) -> bytes:
    """PNG without metadata chunks, so the bytes depend only on the pixels."""
    buf = io.BytesIO()
    render(item, jitter).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_png(path: Path, item: Item, jitter: Jitter = Jitter()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(item, jitter))
