"""Flickr30K in Karpathy's split (dataset_flickr30k.json), text→image and image→text.

Release format: {"images": [{"filename", "imgid", "split": train|val|test, "sentids",
"sentences": [{"raw", "tokens", "sentid", "imgid"}]}], "dataset": "flickr30k"}; the images are the
official `flickr30k-images/<filename>`. Ids stay the release's: a sentence is its `sentid`, an image
its `filename`. t→i queries are the sentences (one positive image), i→t queries the images (their
five sentences); both directions share the candidate table.
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, load_json, require_dir, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec


def read_flickr30k(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    path = root / spec.file("annotations")
    data = load_json(path)
    images = require_field(data, "images", path, "the split file")
    media = MediaIndex(root, require_dir(root, spec.file("images"), "Flickr30K images"), path)
    t2i, i2t = spec.task("flickr30k_t2i"), spec.task("flickr30k_i2t")
    rows = ZeroShotRows(split=split)
    for n, img in enumerate(images):
        if require_field(img, "split", path, f"images[{n}]") != split:
            continue
        name = require_field(img, "filename", path, f"images[{n}]")
        image = media.image(name, f"images[{n}]")
        rows.add_candidate(name, "image", image=image)
        sentids = []
        for s in require_field(img, "sentences", path, f"images[{n}]"):
            sid = str(require_field(s, "sentid", path, f"a sentence of {name}"))
            raw = require_field(s, "raw", path, f"sentence {sid}")
            rows.add_candidate(sid, "text", text=raw)
            rows.add_query(t2i, sid, raw, None, {name: 1})
            sentids.append(sid)
        rows.add_query(i2t, name, None, image, dict.fromkeys(sentids, 1))
    return rows
