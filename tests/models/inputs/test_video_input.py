"""Videos through the one input pipeline: a `VideoPart` expanded to t*h*w/merge^2 tokens (per
temporal patch after its timestamp for Qwen3-VL), frames cut as transformers' video processor
cuts them, the collator's video inputs and M-RoPE positions equal to transformers', and the
embedder's vectors; a corrupt video is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models.inputs.test_video import write_video
from tests.models.tiny_models import TINY_BACKBONES, assert_positions_are_transformers, random_image
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 s at 10 fps: 6 frames sampled at 2 fps -> 3 temporal patches."""
    return write_video(tmp_path_factory.mktemp("videos") / "clip.mp4", n=30)


def _video(clip: Path, rid: str = "v1") -> Record:
    return Record(id=rid, image=str(clip), modality="video")


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_video_tokens_match_the_grid(tiny_embedders, clip, backbone):
    emb = tiny_embedders[backbone]
    f = emb.formatter
    (item,) = f.encode_many([_video(clip)], "candidate")
    assert not item.images and len(item.videos) == 1
    video = item.videos[0]
    t, h, w = video.grid
    p = f.patcher.patch_size
    assert t == 3 and video.frames.shape == (6, h * p, w * p, 3)
    assert h % f.merge_size == 0 and w % f.merge_size == 0
    per_frame = h * w // f.merge_size**2
    assert int((item.input_ids == f.video_pad_id).sum()) == t * per_frame
    assert int((item.input_ids == f.image_pad_id).sum()) == 0
    starts = int((item.input_ids == f.vision_start_id).sum())
    if emb.family.video_layout == "timestamps":
        assert starts == 1 + t  # the template's marker, then one per temporal patch
        text = emb.tokenizer.decode(item.input_ids).replace(" ", "")
        assert [f"<{s:.1f}seconds>" in text for s in video.timestamps] == [True] * t
    else:
        assert starts == 1


def test_odd_frame_count_repeats_the_last_frame(tiny_embedders, tmp_path):
    """The sampler keeps an even count whenever it can: a one-frame video is the odd case."""
    f = tiny_embedders["tiny-qwen2-vl"].formatter
    folder = tmp_path / "frames"
    folder.mkdir()
    random_image(0, 56, 56).save(folder / "000.png")
    video = f.video_input(folder)
    assert video.grid == (1, 4, 4) and video.frames.shape == (2, 56, 56, 3)
    assert np.array_equal(video.frames[1], video.frames[0])
    assert video.timestamps == (0.0,)
    assert f.video_input(write_video(tmp_path / "one.mp4", n=1)).grid[0] == 1


def _reference_video_rows(frames: np.ndarray, mean, std, p: int, m: int, t: int) -> np.ndarray:
    """transformers' Qwen2VLVideoProcessor.patchify (5.x source; its module needs torchvision, which
    the CPU box lacks, so its steps are transcribed): pad with the last frame, view, permute."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None] / 255.0
    x = (x - torch.tensor(mean).view(1, 1, 3, 1, 1)) / torch.tensor(std).view(1, 1, 3, 1, 1)
    b, n, c, height, width = x.shape
    if pad := -n % t:
        x = torch.cat((x, x[:, -1:].expand(-1, pad, -1, -1, -1)), dim=1)
        n += pad
    gt, gh, gw = n // t, height // p, width // p
    x = x.view(b, gt, t, c, gh // m, m, p, gw // m, m, p).permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    return x.reshape(gt * gh * gw, c * t * p * p).numpy()


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_video_rows_match_transformers_layout(tiny_embedders, clip, backbone):
    emb = tiny_embedders[backbone]
    pt = emb.formatter.patcher
    video = emb.formatter.video_input(clip)
    frames = video.frames[:5]  # an odd count: the reference pads it itself
    ref = _reference_video_rows(
        frames,
        emb.family.image_mean,
        emb.family.image_std,
        pt.patch_size,
        pt.merge_size,
        pt.temporal_patch_size,
    )
    ours = pt.patchify_video(np.concatenate([frames, frames[-1:]]))
    assert ours.shape == ref.shape == (video.num_patches, 3 * 2 * pt.patch_size**2)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # a still image is a video of one frame repeated: the image rows are the same numbers
    still = pt.patchify_video(np.repeat(frames[:1], 2, axis=0))
    np.testing.assert_allclose(still, pt.patchify(frames[0]), atol=1e-6)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_batch_with_video_positions_and_vectors(tiny_embedders, clip, backbone, tmp_path):
    emb = tiny_embedders[backbone]
    image = tmp_path / "im.png"
    random_image(3).save(image)
    records = [
        _video(clip),
        Record(id="t", text="a red square moving right"),
        Record(id="i", image=str(image), text="a picture"),
        Record(id="v2", image=str(clip), modality="video"),
    ]
    items = emb.formatter.encode_many(records, "candidate")
    batch = emb.collator(items)
    assert batch["video_grid_thw"].tolist() == [list(items[0].videos[0].grid)] * 2
    assert batch["pixel_values_videos"].shape == (
        2 * items[0].videos[0].num_patches,
        3 * 2 * emb.formatter.patcher.patch_size**2,
    )
    assert int((batch["mm_token_type_ids"] == 2).sum()) == int(
        (batch["input_ids"] == emb.formatter.video_pad_id).sum()
    )
    assert int((batch["mm_token_type_ids"] == 1).sum()) == int(
        (batch["input_ids"] == emb.formatter.image_pad_id).sum()
    )
    if emb.family.video_layout == "seconds":
        assert batch["second_per_grid_ts"].tolist() == [1.0, 1.0]
    assert_positions_are_transformers(emb, batch)
    x = emb.encode(records, batch_size=4, role="candidate")
    assert x.shape == (4, emb.dim) and np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(x[0], x[3], atol=1e-5)  # the same video, alone or beside others
    assert not np.allclose(x[0], x[1], atol=1e-3)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_deferred_video_decoding_gives_the_same_batch(tiny_embedders, clip, backbone):
    """Formatting with deferred decoding reads only headers; the collator decodes the same frames."""
    emb = tiny_embedders[backbone]
    eager = emb.formatter.encode_many([_video(clip)], "candidate")
    lazy = emb.formatter.encode_many([_video(clip)], "candidate", defer_decode=True)
    assert lazy[0].videos[0].frames is None and eager[0].videos[0].frames is not None
    assert np.array_equal(lazy[0].input_ids, eager[0].input_ids)
    a, b = emb.collator(eager), emb.collator(lazy)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_corrupt_video_is_one_line(tiny_embedders, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    with pytest.raises(UmarvelError) as e:
        tiny_embedders["tiny-qwen2-vl"].encode([_video(bad)], role="candidate")
    assert "\n" not in str(e.value) and "bad.mp4" in str(e.value)


def test_video_record_without_path_is_refused(tiny_embedders):
    with pytest.raises(UmarvelError, match="no video path"):
        tiny_embedders["tiny-qwen2-vl"].formatter.encode(
            Record(id="v", modality="video", text="x"), "candidate"
        )


def test_a_collator_without_the_video_token_refuses_videos(tiny_embedders, clip):
    from umarvel_cli.models.inputs.collator import Collator

    f = tiny_embedders["tiny-qwen2-vl"].formatter
    items = f.encode_many([_video(clip)], "candidate")
    with pytest.raises(ValueError, match="video_token_id"):
        Collator(0, f.image_pad_id, patcher=f.patcher)(items)
