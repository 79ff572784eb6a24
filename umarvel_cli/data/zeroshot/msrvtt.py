"""MSR-VTT 1k-A (the JSFusion test split) for text-to-video retrieval.

Release format: `MSRVTT_JSFUSION_test.csv` as shipped in CLIP4Clip's msrvtt_data, a header
`key,vid_key,video_id,sentence` and 1,000 rows (key `ret0`..., video_id `video7579`...); videos are
`<video_id>.mp4` (`videos/all/` in the Frozen-in-Time MSRVTT.zip). Ids stay the release's: query =
the csv `key`, candidate = the `video_id`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, require_dir
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError

COLUMNS = ("key", "vid_key", "video_id", "sentence")


def read_msrvtt(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    path = root / spec.file("csv")
    if not path.is_file():
        raise UmarvelError("annotation file not found", file=path)
    folder = require_dir(root, spec.files["videos"], "MSR-VTT videos")
    media = MediaIndex(root, folder, path)
    rows = ZeroShotRows(split=split)
    task = spec.tasks[0]
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UmarvelError(
                f"no column {', '.join(missing)}", file=path, line=1, expected="header " + ",".join(COLUMNS)
            )
        seen: set[str] = set()
        for line, rec in enumerate(reader, start=2):
            key, video_id = rec["key"], rec["video_id"]
            if not key or not video_id:
                raise UmarvelError("empty key or video_id", file=path, line=line)
            if key in seen:
                raise UmarvelError(f"key {key!r} repeats", file=path, line=line, field="key")
            seen.add(key)
            rows.add_candidate(video_id, "video", image=media.video(video_id, f"line {line} (key {key})"))
            rows.add_query(task, key, rec["sentence"], None, {video_id: 1}, {"vid_key": rec["vid_key"]})
    return rows
