"""Video items -> sampled frames (PIL images with timestamps), the boundary the model input builder
consumes (the formatter turns them into temporal patches: `pixel_values_videos`, `video_grid_thw`).

A video item is a file (mp4, webm, avi, mkv; decoded with PyAV) or a folder of frame images. Frames
are sampled at a fixed rate (2 fps by default, as Qwen2-VL's released video path does: spec §2.8),
the count rounded to a multiple of the temporal patch (2), clipped to [min_frames, max_frames] and to
the frames the video has, spread uniformly over it; each frame is then shrunk to a per-frame pixel
budget, min(max_pixels_per_frame, total_pixels / n_frames * 2) (never below 1.05 x min_pixels).
Rounding to the backbone's patch grid stays the image processor's job. An unreadable or corrupt
video is a bad input: one-line `UmarvelError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from umarvel_cli.errors import UmarvelError

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_PATCH = 28 * 28  # Qwen-VL pixel budgets are counted in 28x28 patches


@dataclass(frozen=True)
class VideoSampling:
    """Qwen2-VL's released defaults (qwen-vl-utils: FPS, FPS_MIN/MAX_FRAMES, VIDEO_*_PIXELS)."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 768
    frame_factor: int = 2
    min_pixels: int = 128 * _PATCH
    max_pixels_per_frame: int = 768 * _PATCH
    total_pixels: int = 24576 * _PATCH
    folder_fps: float = 2.0  # the rate a folder of frames was extracted at

    def frame_pixels(self, n_frames: int) -> int:
        budget = min(self.max_pixels_per_frame, self.total_pixels / max(n_frames, 1) * self.frame_factor)
        return int(max(budget, self.min_pixels * 1.05))


@dataclass(frozen=True)
class VideoFrame:
    image: Image.Image
    timestamp: float  # seconds from the start of the video
    index: int  # frame index in the source


def sample_count(n_total: int, source_fps: float, sampling: VideoSampling) -> int:
    """Frames to keep: duration x fps, rounded to the temporal patch, within the frame budget."""
    if n_total < 1:
        return 0
    factor = sampling.frame_factor
    wanted = round(n_total / source_fps * sampling.fps / factor) * factor
    wanted = min(max(wanted, sampling.min_frames), sampling.max_frames)
    n = min(wanted, n_total)
    if n >= factor:
        n -= n % factor
    return max(n, 1)


def sample_indices(n_total: int, source_fps: float, sampling: VideoSampling) -> list[int]:
    n = sample_count(n_total, source_fps, sampling)
    return np.linspace(0, n_total - 1, n).round().astype(int).tolist() if n else []


def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) shrunk, keeping the aspect ratio, so width x height <= max_pixels; never enlarged."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def fit_pixels(image: Image.Image, max_pixels: int) -> Image.Image:
    """Shrink (keeping the aspect ratio) so width x height <= max_pixels; never enlarges."""
    size = fit_size(image.width, image.height, max_pixels)
    return image if size == image.size else image.resize(size, Image.BICUBIC)


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _frames_from_folder(path: Path, sampling: VideoSampling) -> list[VideoFrame]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
    if not files:
        raise UmarvelError("folder holds no frame images", file=path, expected=", ".join(FRAME_SUFFIXES))
    indices = sample_indices(len(files), sampling.folder_fps, sampling)
    budget = sampling.frame_pixels(len(indices))
    out = []
    for i in indices:
        try:
            with Image.open(files[i]) as im:
                image = im.convert("RGB")
        except OSError as e:
            raise UmarvelError(f"unreadable frame ({e})", file=files[i]) from None
        out.append(VideoFrame(fit_pixels(image, budget), i / sampling.folder_fps, i))
    return out


def _stream_header(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frame count, frame rate, (width, height)) of a video file's first video stream, from its
    headers (frames counted by demuxing, not decoding, when the header has no count)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise UmarvelError("no video stream", file=path)
        stream = container.streams.video[0]
        n_total = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        rate = stream.average_rate or stream.guessed_rate
        return (
            n_total,
            float(rate) if rate else 0.0,
            (stream.codec_context.width, stream.codec_context.height),
        )


def _frames_from_file(path: Path, sampling: VideoSampling) -> list[VideoFrame]:
    import av  # imported here: only video items need it

    try:
        n_total, fps, _ = _stream_header(path)
        if n_total < 1 or fps <= 0:
            raise UmarvelError("video has no frames or no frame rate", file=path)
        wanted = set(sample_indices(n_total, fps, sampling))
        budget = sampling.frame_pixels(len(wanted))
        out: list[VideoFrame] = []
        last: av.VideoFrame | None = None
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                last = frame
                if i in wanted:
                    t = float(frame.time) if frame.time is not None else i / fps
                    out.append(VideoFrame(fit_pixels(frame.to_image(), budget), t, i))
        # A header frame count can exceed the decodable frames by a few: the last frame stands in.
        while last is not None and len(out) < len(wanted):
            out.append(VideoFrame(fit_pixels(last.to_image(), budget), float(last.time or 0.0), n_total - 1))
    except av.FFmpegError as e:
        raise UmarvelError(f"cannot decode video ({e.strerror or type(e).__name__})", file=path) from None
    if not out:
        raise UmarvelError("no frame could be decoded", file=path)
    return out


@dataclass(frozen=True)
class VideoProbe:
    """What the headers say, no frame decoded: the source frames sampled, the source's rate and the
    sampled frames' size after the per-frame budget (enough to count a video's tokens)."""

    indices: tuple[int, ...]
    fps: float
    size: tuple[int, int]  # (width, height)
    total: int  # frames the source has

    @property
    def sampled_fps(self) -> float:
        """The rate the kept frames span the video at (transformers' `VideoMetadata.sampled_fps`)."""
        return len(self.indices) / self.total * self.fps

    @property
    def timestamps(self) -> tuple[float, ...]:
        """Each sampled frame's time: index / fps (what Qwen3-VL's processor computes)."""
        return tuple(i / self.fps for i in self.indices)


def _check_path(path: Path) -> None:
    if path.is_dir():
        return
    if not path.is_file():
        raise UmarvelError("video not found", file=path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UmarvelError(f"not a video file ({path.suffix})", file=path, expected=", ".join(VIDEO_SUFFIXES))


def probe_video(path: str | Path, sampling: VideoSampling | None = None) -> VideoProbe:
    """The frames `read_video_frames` samples and their size, from the container or folder headers."""
    path = Path(path)
    sampling = sampling or VideoSampling()
    _check_path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
        if not files:
            raise UmarvelError("folder holds no frame images", file=path, expected=", ".join(FRAME_SUFFIXES))
        n_total = len(files)
        indices = sample_indices(n_total, sampling.folder_fps, sampling)
        try:
            with Image.open(files[indices[0]]) as im:
                width, height = im.size
        except OSError as e:
            raise UmarvelError(f"unreadable frame ({e})", file=files[indices[0]]) from None
        fps = sampling.folder_fps
    else:
        import av

        try:
            n_total, fps, (width, height) = _stream_header(path)
        except av.FFmpegError as e:
            raise UmarvelError(f"cannot decode video ({e.strerror or type(e).__name__})", file=path) from None
        if n_total < 1 or fps <= 0 or width < 1 or height < 1:
            raise UmarvelError("video has no frames, no frame rate or no frame size", file=path)
        indices = sample_indices(n_total, fps, sampling)
    size = fit_size(width, height, sampling.frame_pixels(len(indices)))
    return VideoProbe(tuple(indices), fps, size, n_total)


def read_video_frames(path: str | Path, sampling: VideoSampling | None = None) -> list[VideoFrame]:
    """Sampled frames of a video file or frame folder, in time order."""
    path = Path(path)
    sampling = sampling or VideoSampling()
    _check_path(path)
    if path.is_dir():
        return _frames_from_folder(path, sampling)
    return _frames_from_file(path, sampling)


def video_frames_array(
    path: str | Path, size: tuple[int, int], resample: int, temporal_patch: int, sampling: VideoSampling
) -> np.ndarray:
    """The sampled frames resized to `size` (width, height) as uint8 [n, H, W, C], n padded up to a
    multiple of `temporal_patch` by repeating the last frame (as Qwen's video processor pads)."""
    frames = read_video_frames(path, sampling)
    stack = np.stack([np.asarray(f.image.resize(size, resample=resample), dtype=np.uint8) for f in frames])
    if pad := -len(stack) % temporal_patch:
        stack = np.concatenate([stack, np.repeat(stack[-1:], pad, axis=0)])
    return stack


__all__ = [
    "VideoFrame",
    "VideoProbe",
    "VideoSampling",
    "fit_pixels",
    "fit_size",
    "probe_video",
    "read_video_frames",
    "sample_count",
    "sample_indices",
    "video_frames_array",
]
