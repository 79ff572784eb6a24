"""Long-caption image/text retrieval, both directions: ShareGPT4V-1k and Urban-1K.

ShareGPT4V-1k, as the paper evaluates it (LamRA's split, which U-MARVEL's eval_sharegpt4v.py reads):
`sharegpt4v/datas_for_validation.json`, a list of 1,000 {"image_name", "caption"}, images under
`sharegpt4v/val_data/`. The file has no caption ids: a caption is `<position in the list>`, an image
its `image_name`.
Urban-1K (huggingface BeichenZhang/Urban1k, read by Long-CLIP's eval/retrieval/Urban1k.py):
`Urban1k/caption/<n>.txt` (the caption is the first line) and `Urban1k/image/<n>.jpg`, paired by
<n>. A caption is its file name `<n>.txt`, an image `<n>.jpg`.
Each caption has one image and each image one caption; t→i queries are the captions, i→t the images.
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, load_json, require_dir, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError


def _pair(
    rows: ZeroShotRows, spec: BenchmarkSpec, caption_id: str, text: str, image_id: str, image: str
) -> None:
    t2i, i2t = spec.tasks[0], spec.tasks[1]
    rows.add_candidate(caption_id, "text", text=text)
    rows.add_candidate(image_id, "image", image=image)
    rows.add_query(t2i, caption_id, text, None, {image_id: 1})
    rows.add_query(i2t, image_id, None, image, {caption_id: 1})


def read_sharegpt4v(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    path = root / spec.file("annotations")
    items = load_json(path)
    if not isinstance(items, list):
        raise UmarvelError("not a list of pairs", file=path, expected='[{"image_name", "caption"}, ...]')
    media = MediaIndex(root, require_dir(root, spec.file("images"), "ShareGPT4V images"), path)
    rows = ZeroShotRows(split=split)
    for n, item in enumerate(items):
        name = require_field(item, "image_name", path, f"item {n}")
        if name in rows.candidates:
            raise UmarvelError(f"item {n}: image {name!r} appears twice", file=path, field="image_name")
        caption = require_field(item, "caption", path, f"item {n}")
        _pair(rows, spec, str(n), caption, name, media.image(name, f"item {n}"))
    return rows


def read_urban1k(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    captions = root / spec.file("captions")
    if not captions.is_dir():
        raise UmarvelError("caption folder not found", file=captions)
    media = MediaIndex(root, require_dir(root, spec.file("images"), "Urban-1K images"), captions)
    rows = ZeroShotRows(split=split)
    files = sorted(captions.glob("*.txt"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise UmarvelError("no caption files", file=captions, expected="<n>.txt files")
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].strip():
            raise UmarvelError("empty caption", file=path, line=1)
        image_name = f"{path.stem}.jpg"
        _pair(
            rows,
            spec,
            path.name,
            lines[0].strip(),
            image_name,
            media.image(image_name, f"caption {path.name}"),
        )
    return rows
