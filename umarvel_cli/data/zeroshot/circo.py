"""CIRCO (github.com/miccunifi/CIRCO): composed image retrieval over the COCO 2017 unlabeled images.

Release format (README "Data Structure", src/dataset.py): `annotations/{val,test}.json`, a list of
{id, reference_img_id, relative_caption, shared_concept[, target_img_id, gt_img_ids, semantic_aspects]}
(test has no target nor ground truths); images are listed in
`COCO2017_unlabeled/annotations/image_info_unlabeled2017.json` ({"images": [{id, file_name, ...}]}).
Ids stay the release's: query = the annotation `id`, candidate = the COCO image id. The annotated
target gets relevance 2 (CIRCO's recall@k counts it alone), the other ground truths relevance 1.
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, load_json, require_dir, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError


def read_circo(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    ann_path = root / spec.file("annotations", split=split)
    info_path = root / spec.file("image_info")
    annotations = load_json(ann_path)
    info = load_json(info_path)
    images = require_field(info, "images", info_path, "the image info")
    folder = require_dir(root, spec.file("images"), "COCO 2017 unlabeled images")
    media = MediaIndex(root, folder, info_path)
    rows = ZeroShotRows(split=split)
    for n, img in enumerate(images):
        image_id = require_field(img, "id", info_path, f"images[{n}]")
        name = require_field(img, "file_name", info_path, f"images[{n}]")
        rows.add_candidate(str(image_id), "image", image=media.image(name, f"image id {image_id}"))
    if not isinstance(annotations, list):
        raise UmarvelError("not a list of queries", file=ann_path, expected="CIRCO's annotation list")
    task = spec.tasks[0]
    for n, ann in enumerate(annotations):
        where = f"query {n}"
        qid = str(require_field(ann, "id", ann_path, where))
        ref = str(require_field(ann, "reference_img_id", ann_path, where))
        caption = require_field(ann, "relative_caption", ann_path, where)
        positives: dict[str, int] = {}
        if split != "test":
            target = str(require_field(ann, "target_img_id", ann_path, where))
            positives = {str(g): 1 for g in require_field(ann, "gt_img_ids", ann_path, where)}
            positives[target] = 2
        for image_id in (ref, *positives):
            if image_id not in rows.candidates:
                raise UmarvelError(
                    f"query id {qid} names image id {image_id}, which the image info does not list",
                    file=ann_path,
                    expected=f"ids from {info_path.name}",
                )
        src = {k: ann[k] for k in ("shared_concept", "semantic_aspects", "reference_img_id") if k in ann}
        rows.add_query(task, qid, caption, rows.candidates[ref]["image"], positives, src)
    return rows
