"""What a zero-shot reader returns: the rows of the M-BEIR tables plus per-query galleries, and the
helpers every reader shares (JSON with one-line errors, media files that must exist)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umarvel_cli.data.zeroshot.spec import TaskSpec
from umarvel_cli.errors import UmarvelError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv")


@dataclass
class ZeroShotRows:
    """Rows for the `queries`, `candidates`, `qrels` and `galleries` tables of one benchmark split."""

    split: str
    queries: list[dict[str, Any]] = field(default_factory=list)
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)  # did -> row (first wins)
    qrels: list[dict[str, Any]] = field(default_factory=list)
    galleries: list[dict[str, Any]] = field(default_factory=list)
    # Derived images the prepare writes under OUT (GeneCIS crops); with any, OUT becomes the images
    # root and the release is reached through the OUT/release link.
    crops: list[Any] = field(default_factory=list)

    def add_candidate(
        self, did: str, modality: str, text: str | None = None, image: str | None = None
    ) -> str:
        if did not in self.candidates:
            self.candidates[did] = {
                "did": did, "modality": modality, "text": text, "image": image, "src_content": None,
            }  # fmt: skip
        return did

    def add_query(
        self,
        task: TaskSpec,
        qid: str,
        text: str | None,
        image: str | None,
        positives: dict[str, int],
        src: dict[str, Any] | None = None,
        gallery: list[str] | None = None,
    ) -> None:
        """A query of `task`, its judged positives (did -> relevance) and, for gallery protocols, its
        gallery. `task_id` is the direction's M-BEIR task type, `dataset_id` names the benchmark task."""
        task_id = task.task_id
        self.queries.append(
            {
                "qid": qid,
                "split": self.split,
                "task_id": task_id,
                "dataset_id": task.dataset_id,
                "modality": task.query_modality,
                "text": text,
                "image": image,
                "pos": list(positives),
                "neg": [d for d in (gallery or []) if d not in positives],
                "src_content": json.dumps(src, sort_keys=True) if src else None,
            }
        )
        for did, rel in positives.items():
            self.qrels.append(
                {"qid": qid, "did": did, "relevance": rel, "task_id": task_id, "split": self.split}
            )
        for did in gallery or []:
            self.galleries.append({"qid": qid, "did": did})


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise UmarvelError("annotation file not found", file=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UmarvelError(f"not valid JSON ({e.msg})", file=path, line=e.lineno) from None


def require_field(record: Any, name: str, path: Path, where: str) -> Any:
    if not isinstance(record, dict) or name not in record:
        raise UmarvelError(f"{where} has no '{name}'", file=path, field=name)
    return record[name]


def require_dir(root: Path, rel: str | list[str], what: str) -> str:
    """The first of the release's folder names that exists under root (relative path)."""
    options = [rel] if isinstance(rel, str) else list(rel)
    for option in options:
        if (root / option).is_dir():
            return option
    raise UmarvelError(f"{what} folder not found", file=root / options[0], expected=" or ".join(options))


def probe_video(path: Path) -> None:
    """Open the container and decode its first frame, so an unreadable video stops the prepare."""
    import av  # only video benchmarks need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UmarvelError("no video stream", file=path)
            next(container.decode(video=0))
    except av.FFmpegError as e:
        raise UmarvelError(f"cannot decode video ({e.strerror or type(e).__name__})", file=path) from None
    except StopIteration:
        raise UmarvelError("video has no frames", file=path) from None


class MediaIndex:
    """Existence checks for the image/video files a release names, reported as one line."""

    def __init__(self, root: Path, folder: str, annotations: Path) -> None:
        self.root = root
        self.folder = folder
        self.annotations = annotations
        self._names = {p.name for p in (root / folder).iterdir()}

    def image(self, name: str, ref: str) -> str:
        if name not in self._names:
            raise UmarvelError(
                f"{ref} names image '{name}', which is not in {self.folder}/",
                file=self.annotations,
                expected=f"the release's images under {self.root / self.folder}",
            )
        return f"{self.folder}/{name}"

    def video(self, stem: str, ref: str) -> str:
        """A video file <stem>.<mp4|webm|avi|mkv> whose first frame decodes, or a folder <stem>/ of frames."""
        for ext in VIDEO_EXTENSIONS:
            if stem + ext in self._names:
                probe_video(self.root / self.folder / f"{stem}{ext}")
                return f"{self.folder}/{stem}{ext}"
        if stem in self._names and (self.root / self.folder / stem).is_dir():
            return f"{self.folder}/{stem}"
        raise UmarvelError(
            f"{ref} names video '{stem}', which is not in {self.folder}/",
            file=self.annotations,
            expected=f"{stem}.mp4|.webm|.avi|.mkv or a folder of frames under {self.root / self.folder}",
        )
