"""Small zero-shot sets for the demo, written in the CIRCO and MSR-VTT release formats.

CIRCO-style: composed edits of the demo's drawn scenes. A query shows a reference scene and asks for
one attribute changed ("is blue", "on a night background"); its ground truths are every gallery image
of the same shape with the new value (several per query, as in CIRCO), the first one the target.
MSR-VTT-style: short clips of a shape moving across its background (mp4, 8 fps, 2 s), each with one
caption naming the shape, its colour, the direction and the background. Both sets go through
`prepare zeroshot` unchanged, like the real releases.
"""

from __future__ import annotations

import csv
import json
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

from umarvel_cli.data.demo.drawing import CANVAS, render
from umarvel_cli.data.demo.world import ATTRIBUTES, Item, Jitter, mutate, random_item

_EDITS = {
    "colour": "is {v}",
    "shape": "is a {v} instead",
    "texture": "has a {v} texture",
    "size": "is {v}",
    "position": "sits at the {v}",
    "background": "is on a {v} background",
}
_MOVES = {
    "left to right": (-1, 0),
    "right to left": (1, 0),
    "top to bottom": (0, -1),
    "bottom to top": (0, 1),
}
CLIP_FPS = 8
CLIP_FRAMES = 16
_SPAN = 16  # pixels the shape travels each side of its position


def _image_id(n: int) -> int:
    return 100_000 + n


def write_circo_demo(root: Path, seed: int = 0, n_gallery: int = 48, n_queries: int = 12) -> dict[str, int]:
    """root/annotations/{val,test}.json + root/COCO2017_unlabeled/... with drawn scenes."""
    rng = random.Random(seed)
    items = [random_item(rng) for _ in range(n_gallery)]
    edits = []  # (reference index, attribute, target index): targets join the gallery first,
    for _ in range(2 * n_queries):  # so ground truths are computed over the final gallery
        ref = rng.randrange(len(items))
        attribute = rng.choice([a for a in ATTRIBUTES if a != "shape"])
        items.append(mutate(items[ref], attribute, rng))
        edits.append((ref, attribute, len(items) - 1))
    annotations: dict[str, list[dict[str, Any]]] = {"val": [], "test": []}
    for q, (ref, attribute, target) in enumerate(edits):
        wanted = items[target]
        value = getattr(wanted, attribute)
        others = [
            _image_id(i)
            for i, it in enumerate(items)
            if it.shape == wanted.shape and getattr(it, attribute) == value and i not in (ref, target)
        ]
        split = "val" if q < n_queries else "test"
        record: dict[str, Any] = {
            "reference_img_id": _image_id(ref),
            "relative_caption": _EDITS[attribute].format(v=value),
            "shared_concept": f"a {items[ref].shape}",
            "id": len(annotations[split]),
        }
        if split == "val":
            record |= {"target_img_id": _image_id(target), "gt_img_ids": [_image_id(target), *others]}
        annotations[split].append(record)
    images_dir = root / "COCO2017_unlabeled/unlabeled2017"
    images_dir.mkdir(parents=True, exist_ok=True)
    info = []
    for i, item in enumerate(items):
        name = f"{_image_id(i):012d}.jpg"
        render(item, Jitter.draw(rng)).save(images_dir / name, quality=92)
        info.append({"id": _image_id(i), "file_name": name, "height": CANVAS, "width": CANVAS})
    (root / "COCO2017_unlabeled/annotations").mkdir(parents=True, exist_ok=True)
    (root / "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json").write_text(
        json.dumps({"images": info})
    )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, records in annotations.items():
        (root / f"annotations/{split}.json").write_text(json.dumps(records, indent=1))
    return {
        "images": len(items),
        "val_queries": len(annotations["val"]),
        "test_queries": len(annotations["test"]),
    }


def write_clip(path: Path, item: Item, move: tuple[int, int], light: int = 0) -> None:
    """An mp4 of `item` crossing its background along `move` (frames drawn by the demo renderer)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=CLIP_FPS)
        stream.width = stream.height = CANVAS
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, CLIP_FPS)
        for i in range(CLIP_FRAMES):
            t = -_SPAN + 2 * _SPAN * i / (CLIP_FRAMES - 1)
            frame = av.VideoFrame.from_image(
                render(item, Jitter(round(move[0] * t), round(move[1] * t), light))
            )
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_msrvtt_demo(root: Path, seed: int = 0, n_clips: int = 8) -> dict[str, int]:
    """root/MSRVTT_JSFUSION_test.csv (key, vid_key, video_id, sentence) + root/videos/all/<video_id>.mp4."""
    rng = random.Random(seed + 1)
    rows = []
    for n in range(n_clips):
        item = random_item(rng, position="centre")
        direction = rng.choice(list(_MOVES))
        video_id = f"video{9000 + n}"
        write_clip(
            root / "videos/all" / f"{video_id}.mp4", item, _MOVES[direction], light=rng.randint(-15, 15)
        )
        sentence = f"a {item.colour} {item.shape} moves from {direction} on a {item.background} background"
        rows.append((f"ret{n}", f"msr{9000 + n}", video_id, sentence))
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        writer.writerows(rows)
    return {"clips": n_clips}


DEMO_MARKER = "umarvel_demo.json"  # in a release folder: synthetic data, so no paper numbers beside ours


def write_zeroshot_demo(out: Path, seed: int = 0) -> dict[str, dict[str, int]]:
    """out/CIRCO and out/msrvtt, each a release folder for `umarvel prepare zeroshot --root`."""
    out = Path(out)
    counts = {
        "circo": write_circo_demo(out / "CIRCO", seed),
        "msrvtt": write_msrvtt_demo(out / "msrvtt", seed),
    }
    for name in ("CIRCO", "msrvtt"):
        (out / name / DEMO_MARKER).write_text(
            json.dumps({"seed": seed, "generator": "umarvel zeroshot demo"}) + "\n"
        )
    return counts
