"""CC-Neg (negation understanding), image → text choice between a caption and its negated version.

Release format: `ccneg_preprocessed.pt`, a torch-saved dict {"image_paths": [str], "annotations":
[{"json": {"caption", ...}, "sop_data": {"negative-prompt", ...}, ...}]} over CC3M images; the last
40,000 samples are the evaluation split, and the negative's commas are dropped (as U-MARVEL's
datasets_ccneg.py does). It is loaded with `torch.load(weights_only=True)`, torch's restricted
unpickler (plain containers, strings and tensors only). Image paths are the authors' absolute
paths; with the `path_prefix` they share removed (as datasets_ccneg.py does) they are looked up
under --root. A query is `<position in the file>`; its
options are `<position>/pos` and `<position>/neg`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from umarvel_cli.data.zeroshot.records import ZeroShotRows, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError

EVAL_SIZE = 40_000  # the last 40k samples (datasets_ccneg.py split_size)


def _load(path: Path) -> dict:
    import torch  # only this reader needs it

    if not path.is_file():
        raise UmarvelError("annotation file not found", file=path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UmarvelError(f"not a plain-data torch file ({first})", file=path) from None
    if not isinstance(data, dict):
        raise UmarvelError("not a dict", file=path, expected='{"image_paths", "annotations"}')
    return data


def read_ccneg(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    path = root / spec.file("annotations")
    data = _load(path)
    paths = require_field(data, "image_paths", path, "the file")
    annotations = require_field(data, "annotations", path, "the file")
    if len(paths) != len(annotations):
        raise UmarvelError(f"{len(paths)} image paths but {len(annotations)} annotations", file=path)
    prefix = spec.file("path_prefix")
    rows = ZeroShotRows(split=split)
    task = spec.tasks[0]
    start = max(0, len(paths) - EVAL_SIZE)
    for n in range(start, len(paths)):
        where = f"sample {n}"
        caption = require_field(require_field(annotations[n], "json", path, where), "caption", path, where)
        sop = require_field(annotations[n], "sop_data", path, where)
        negative = require_field(sop, "negative-prompt", path, where).replace(",", "")
        image = paths[n][len(prefix) :] if paths[n].startswith(prefix) else paths[n].lstrip("/")
        if not (root / image).is_file():
            raise UmarvelError(
                f"{where} names image '{paths[n]}', not found as {image} under the root", file=path
            )
        qid = str(n)
        pos = rows.add_candidate(f"{qid}/pos", "text", text=caption)
        neg = rows.add_candidate(f"{qid}/neg", "text", text=negative)
        rows.add_query(task, qid, None, image, {pos: 1}, gallery=[pos, neg])
    return rows
