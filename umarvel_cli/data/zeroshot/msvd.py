"""MSVD for text-to-video retrieval, in the layout CLIP4Clip reads (dataloader_msvd_retrieval.py).

Release format: `test_list.txt` (one video name a line) and `raw-captions.pkl`, a pickle of a dict
video name -> list of captions, each caption a list of tokens (joined with spaces, as CLIP4Clip
does); videos `YouTubeClips/<name>.avi`. The pickle is read with a restricted unpickler that admits
plain containers and strings only. The release has no caption ids: a query is `<video name>#<i>`,
i the caption's position in that video's list; a candidate is the video name.
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, require_dir
from umarvel_cli.data.zeroshot.safe_pickle import load_plain_pickle
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError


def _caption_text(caption: object, path: Path, video: str) -> str:
    if isinstance(caption, str):
        return caption
    if isinstance(caption, list | tuple) and all(isinstance(t, str) for t in caption):
        return " ".join(caption)
    raise UmarvelError(
        f"a caption of video {video!r} is neither a token list nor a string",
        file=path,
        expected="token lists",
    )


def read_msvd(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    list_path = root / spec.file("list", split=split)
    cap_path = root / spec.file("captions")
    if not list_path.is_file():
        raise UmarvelError("video list not found", file=list_path)
    captions = load_plain_pickle(cap_path)
    if not isinstance(captions, dict):
        raise UmarvelError("not a dict of captions", file=cap_path, expected="video name -> list of captions")
    folder = require_dir(root, spec.files["videos"], "MSVD videos")
    media = MediaIndex(root, folder, list_path)
    rows = ZeroShotRows(split=split)
    task = spec.tasks[0]
    for line, raw in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        video = raw.strip()
        if not video:
            continue
        if video not in captions:
            raise UmarvelError(
                f"video {video!r} has no captions",
                file=cap_path,
                expected=f"a key per line of {list_path.name}",
            )
        rows.add_candidate(video, "video", image=media.video(video, f"{list_path.name} line {line}"))
        for i, caption in enumerate(captions[video]):
            text = _caption_text(caption, cap_path, video)
            rows.add_query(task, f"{video}#{i}", text, None, {video: 1})
    return rows
