"""A horizontal bar chart of per-task scores drawn with pillow (matplotlib is not a dependency)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

ROW, LABEL_W, BAR_W, PAD = 26, 260, 520, 14


def _ascii(text: str) -> str:
    """Pillow's built-in font has no arrows: write them as ASCII."""
    return text.replace("→", "->")


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float]],
    reference: Mapping[str, float] | None = None,
    reference_label: str = "",
) -> Image.Image:
    """Bars for (label, fraction in [0, 1]) pairs; an optional reference value per label (a fraction)
    is drawn as a black tick so a published number can be read against ours."""
    font = ImageFont.load_default()
    legend = 22 if reference else 0
    height = PAD * 3 + 20 + legend + ROW * max(len(items), 1)
    width = LABEL_W + BAR_W + 90
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((PAD, PAD), _ascii(title), fill="black", font=font)
    top = PAD * 2 + 20
    if reference:
        draw.line([(LABEL_W, top + 8), (LABEL_W, top + 18)], fill="black", width=3)
        draw.text((LABEL_W + 8, top + 6), reference_label, fill="black", font=font)
        top += legend
    for gx in range(0, 101, 25):
        x = LABEL_W + BAR_W * gx / 100
        draw.line([(x, top - 4), (x, top + ROW * len(items))], fill=(220, 220, 220))
        draw.text((x - 8, top + ROW * len(items) + 2), f"{gx}%", fill="gray", font=font)
    for i, (label, value) in enumerate(items):
        y = top + i * ROW
        v = min(max(value, 0.0), 1.0)
        draw.text((PAD, y + 6), _ascii(label)[:40], fill="black", font=font)
        draw.rectangle([LABEL_W, y + 4, LABEL_W + BAR_W * v, y + ROW - 4], fill=(66, 113, 196))
        draw.text((LABEL_W + BAR_W * v + 6, y + 6), f"{100 * value:.1f}", fill="black", font=font)
        if reference and label in reference:
            x = LABEL_W + BAR_W * min(max(reference[label], 0.0), 1.0)
            draw.line([(x, y + 1), (x, y + ROW - 1)], fill="black", width=3)
    return img
