"""Video items: frames sampled at 2 fps within the frame and pixel budgets, from files the test
encodes with PyAV (frames drawn with Pillow) or from a folder of frames; corrupt files are one line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageDraw

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.video import (
    VideoSampling,
    fit_pixels,
    probe_video,
    read_video_frames,
    sample_count,
    sample_indices,
)

CODECS = {".mp4": "mpeg4", ".avi": "mpeg4", ".mkv": "ffv1", ".webm": "libvpx"}


def _frame(i: int, size: tuple[int, int]) -> Image.Image:
    """Frame i: a flat red level 8*i (readable back through a lossy codec) and a moving square."""
    im = Image.new("RGB", size, (8 * i, 40, 200))
    ImageDraw.Draw(im).rectangle([2 * i, 4, 2 * i + 6, 10], fill=(255, 255, 255))
    return im


def write_video(path: Path, n: int, fps: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    codec = CODECS[path.suffix]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        if codec == "libvpx":
            stream.bit_rate = 2_000_000
        for i in range(n):
            frame = av.VideoFrame.from_image(_frame(i, size))
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _red(im: Image.Image) -> float:
    return im.getpixel((im.width - 4, im.height - 4))[0]


def test_sampling_rule():
    s = VideoSampling()
    assert sample_count(30, 10.0, s) == 6  # 3 s at 2 fps
    assert sample_count(300, 30.0, s) == 20
    assert sample_count(10, 10.0, s) == 4  # 1 s -> 2 frames, raised to min_frames 4
    assert sample_count(3, 10.0, s) == 2  # only 3 frames: rounded down to the temporal patch
    assert sample_count(1, 10.0, s) == 1
    assert sample_count(100_000, 25.0, s) == 768  # the frame budget
    assert sample_count(100, 10.0, VideoSampling(max_frames=8)) == 8
    assert sample_indices(30, 10.0, s) == [0, 6, 12, 17, 23, 29]


def test_pixel_budget():
    s = VideoSampling()
    assert s.frame_pixels(4) == 768 * 28 * 28  # per-frame cap
    assert s.frame_pixels(100) == int(24576 * 28 * 28 / 100 * 2)  # total budget / frames x 2
    assert s.frame_pixels(768) == int(128 * 28 * 28 * 1.05)  # 64 patches: below the floor
    small = fit_pixels(Image.new("RGB", (400, 300)), 12_000)
    assert small.size == (126, 94) and small.width * small.height <= 12_000
    same = Image.new("RGB", (10, 10))
    assert fit_pixels(same, 12_000) is same


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi", ".mkv"])
def test_decodes_each_container_at_2_fps(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", n=30, fps=10)
    frames = read_video_frames(path)
    assert [f.index for f in frames] == [0, 6, 12, 17, 23, 29]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.6, 1.2, 1.7, 2.3, 2.9])
    assert all(f.image.size == (64, 48) and f.image.mode == "RGB" for f in frames)
    for f in frames:  # the right frames came back (red level 8*i, within codec error)
        assert abs(_red(f.image) - 8 * f.index) <= 12
    probe = probe_video(path)  # the same frames and size from the headers alone
    assert probe.indices == (0, 6, 12, 17, 23, 29) and probe.size == (64, 48) and probe.fps == 10.0
    assert probe.total == 30 and probe.sampled_fps == pytest.approx(2.0)


def test_frame_and_pixel_budgets_apply_to_files(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n=40, fps=10, size=(128, 96))
    s = VideoSampling(max_frames=4, max_pixels_per_frame=3000, min_pixels=100)
    frames = read_video_frames(path, s)
    assert [f.index for f in frames] == [0, 13, 26, 39]
    assert all(f.image.width * f.image.height <= 3000 for f in frames)
    assert frames[0].image.size == (63, 47)
    assert probe_video(path, s).size == (63, 47) and probe_video(path, s).indices == (0, 13, 26, 39)


def test_folder_of_frames_in_natural_order(tmp_path):
    folder = tmp_path / "video7000"
    folder.mkdir()
    for i in range(12):
        _frame(i, (32, 24)).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("ignored")
    frames = read_video_frames(folder, VideoSampling(folder_fps=4.0))  # 3 s of frames at 4 fps -> 6
    assert [f.index for f in frames] == [0, 2, 4, 7, 9, 11]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.75, 2.25, 2.75])
    assert [_red(f.image) for f in frames] == [0, 16, 32, 56, 72, 88]
    probe = probe_video(folder, VideoSampling(folder_fps=4.0))
    assert probe.indices == (0, 2, 4, 7, 9, 11) and probe.size == (32, 24) and probe.total == 12
    assert probe.sampled_fps == pytest.approx(2.0)  # 6 of 12 frames taken at 4 fps
    assert probe.timestamps == pytest.approx([0.0, 0.5, 1.0, 1.75, 2.25, 2.75])


def test_corrupt_missing_and_wrong_inputs_are_one_line(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(UmarvelError, match="broken.mp4: cannot decode video") as e:
        read_video_frames(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(UmarvelError, match="broken.mp4: cannot decode video"):
        probe_video(bad)
    with pytest.raises(UmarvelError, match="video not found"):
        read_video_frames(tmp_path / "nope.mp4")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(UmarvelError, match="not a video file"):
        read_video_frames(tmp_path / "clip.gif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UmarvelError, match="folder holds no frame images"):
        read_video_frames(tmp_path / "empty")
