"""GeneCIS (github.com/facebookresearch/genecis): conditional similarity, ranked within each query's
own gallery.

Release format (genecis/{focus,change}_{attribute,object}.json, read by datasets/coco_dataset.py and
datasets/vaw_dataset.py): a list of {"reference", "target", "condition", "gallery": [...]}. Object
subsets name COCO val2017 images as {"val_image_id": id} (file `<id:012d>.jpg`); attribute subsets
name Visual Genome crops as {"image_id", "instance_bbox": [x, y, w, h]} (file `<image_id>.jpg`,
cropped as vaw_dataset.py does: the box dilated by 0.7 of its size, clipped, padded to a square).
A query is `<subset>/<index in the list>`; its gallery is [target] + gallery, the target its one
positive. Crops are written once under OUT/crops/ (`<image_id>_<x>_<y>_<w>_<h>.png`) and named by
that stem, so the candidate id stays tied to the release's image id and box; their image paths are
`crops/<stem>.png`, relative to OUT (see prepare.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from umarvel_cli.artifacts.atomic import atomic_output
from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, load_json, require_dir, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError

DILATION = 0.7  # vaw_dataset.py DILATION
CROPS_DIR = "crops"


@dataclass(frozen=True)
class Crop:
    source: Path
    bbox: tuple[float, float, float, float]
    dest: str  # file name under OUT/crops/


def write_crop(crop: Crop, out_dir: Path) -> None:
    """The GeneCIS attribute crop: dilated box, clipped to the image, padded black to a square."""
    with Image.open(crop.source) as im:
        im = im.convert("RGB")
        x, y, w, h = crop.bbox
        left, top = max(0.0, x - DILATION * w), max(0.0, y - DILATION * h)
        right = min(im.width, left + (1 + DILATION) * w)
        bottom = min(im.height, top + (1 + DILATION) * h)
        cut = im.crop((left, top, right, bottom))
    side = max(cut.size)
    square = Image.new("RGB", (side, side), (0, 0, 0))
    square.paste(cut, ((side - cut.width) // 2, (side - cut.height) // 2))
    with atomic_output(out_dir / crop.dest) as fh:
        square.save(fh, format="PNG")


def _item(
    rec: Any, subset: str, rows: ZeroShotRows, coco: MediaIndex | None, vg: MediaIndex | None,
    crops: dict[str, Crop], where: str, path: Path,
) -> str:  # fmt: skip
    if subset.endswith("_object"):
        image_id = int(require_field(rec, "val_image_id", path, where))
        assert coco is not None
        return rows.add_candidate(str(image_id), "image", image=coco.image(f"{image_id:012d}.jpg", where))
    image_id = int(require_field(rec, "image_id", path, where))
    box = require_field(rec, "instance_bbox", path, where)
    if not (isinstance(box, list) and len(box) == 4):
        raise UmarvelError(f"{where}: instance_bbox is not [x, y, w, h]", file=path, field="instance_bbox")
    assert vg is not None
    source = vg.image(f"{image_id}.jpg", where)
    did = "_".join([str(image_id), *(f"{float(v):g}" for v in box)])
    if did not in crops:
        crops[did] = Crop(vg.root / source, tuple(float(v) for v in box), f"{did}.png")
    return rows.add_candidate(did, "image", image=f"{CROPS_DIR}/{did}.png")


def read_genecis(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    rows = ZeroShotRows(split=split)
    crops: dict[str, Crop] = {}
    for task in spec.tasks:
        path = root / spec.file("subsets", subset=task.name)
        samples = load_json(path)
        if not isinstance(samples, list):
            raise UmarvelError("not a list of samples", file=path, expected="GeneCIS's sample list")
        if task.name.endswith("_object"):
            coco, vg = (
                MediaIndex(root, require_dir(root, spec.file("coco_images"), "COCO val2017"), path),
                None,
            )
        else:
            coco, vg = (
                None,
                MediaIndex(root, require_dir(root, spec.file("vg_images"), "Visual Genome"), path),
            )

        def item(rec: Any, where: str, subset: str = task.name, coco=coco, vg=vg, path=path) -> str:
            return _item(rec, subset, rows, coco, vg, crops, where, path)

        for n, s in enumerate(samples):
            where = f"sample {n}"
            ref = item(require_field(s, "reference", path, where), where)
            target = item(require_field(s, "target", path, where), where)
            gallery = [target] + [
                item(g, f"{where} gallery") for g in require_field(s, "gallery", path, where)
            ]
            condition = require_field(s, "condition", path, where)
            image = rows.candidates[ref]["image"]
            rows.add_query(task, f"{task.name}/{n}", condition, image, {target: 1},
                           gallery=gallery)  # fmt: skip
    rows.crops = list(crops.values())
    return rows
