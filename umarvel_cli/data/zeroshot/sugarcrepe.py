"""SugarCrepe (github.com/RAIVNLab/sugar-crepe): image-to-text choice between a caption and a hard
negative, seven subsets.

Release format: data/<subset>.json, a dict "<index>" -> {"filename", "caption", "negative_caption"}
over COCO val2017 images; main_eval.py counts a sample correct iff score(caption) > score(negative)
(strictly). A query is `<subset>/<index>` (the image); its gallery is `<subset>/<index>/pos` (the
caption, the positive) and `<subset>/<index>/neg` (the negative caption).
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, load_json, require_dir, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError


def read_sugarcrepe(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    rows = ZeroShotRows(split=split)
    folder = require_dir(root, spec.file("images"), "COCO val2017 images")
    for task in spec.tasks:
        path = root / spec.file("subsets", subset=task.name)
        data = load_json(path)
        if not isinstance(data, dict):
            raise UmarvelError(
                "not a dict of samples", file=path, expected='{"0": {filename, caption, negative_caption}}'
            )
        media = MediaIndex(root, folder, path)
        for key, rec in data.items():
            where = f"sample {key}"
            qid = f"{task.name}/{key}"
            image = media.image(require_field(rec, "filename", path, where), where)
            pos = rows.add_candidate(f"{qid}/pos", "text", text=require_field(rec, "caption", path, where))
            neg = rows.add_candidate(
                f"{qid}/neg", "text", text=require_field(rec, "negative_caption", path, where)
            )
            rows.add_query(task, qid, None, image, {pos: 1}, gallery=[pos, neg])
    return rows
