"""Tiny releases written in each benchmark's exact published layout (see the reader docstrings)."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

from PIL import Image


def _jpg(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def write_circo(root: Path, image_ids: tuple[int, ...] = (9761, 85932, 489535, 57541, 1000, 2000)) -> Path:
    """annotations/{val,test}.json + COCO2017_unlabeled/{annotations/image_info_unlabeled2017.json, unlabeled2017/}."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": 30, "width": 40} for i in image_ids]
    for img in images:
        _jpg(root / "COCO2017_unlabeled/unlabeled2017" / img["file_name"])
    info = root / "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(json.dumps({"info": {}, "images": images}))
    val = [
        {"reference_img_id": 85932, "target_img_id": 9761, "relative_caption": "is held by a little girl",
         "shared_concept": "a teddy bear", "gt_img_ids": [9761, 489535, 57541], "id": 0,
         "semantic_aspects": ["addition"]},
        {"reference_img_id": 1000, "target_img_id": 2000, "relative_caption": "at night",
         "shared_concept": "a street", "gt_img_ids": [2000], "id": 1, "semantic_aspects": []},
    ]  # fmt: skip
    test = [
        {"reference_img_id": 85932, "relative_caption": "is red", "shared_concept": "a bear", "id": 0},
        {"reference_img_id": 1000, "relative_caption": "in daylight", "shared_concept": "a road", "id": 1},
    ]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations/val.json").write_text(json.dumps(val))
    (root / "annotations/test.json").write_text(json.dumps(test))
    return root


def write_clip(path: Path, n: int = 4) -> Path:
    """A tiny real video (mpeg4 in the file's container), n frames at 4 fps."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_image(Image.new("RGB", (32, 32), (40 * i, 80, 120)))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_msrvtt(root: Path, n: int = 3, with_videos: bool = True) -> Path:
    """MSRVTT_JSFUSION_test.csv (key, vid_key, video_id, sentence) + videos/all/<video_id>.mp4."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "vid_key", "video_id", "sentence"])
        for i in range(n):
            w.writerow([f"ret{i}", f"msr{7000 + i}", f"video{7000 + i}", f"a person does thing {i}"])
    (root / "videos/all").mkdir(parents=True, exist_ok=True)
    if with_videos:
        for i in range(n):
            write_clip(root / f"videos/all/video{7000 + i}.mp4")
    return root


def write_msvd(root: Path, captions: object | None = None) -> Path:
    """test_list.txt + raw-captions.pkl (name -> list of token lists) + YouTubeClips/<name>.avi."""
    root.mkdir(parents=True, exist_ok=True)
    names = ["-4wsuPCjDBc_5_15", "zv2RIbUsnSw_159_167"]
    (root / "test_list.txt").write_text("\n".join(names) + "\n")
    if captions is None:
        captions = {
            names[0]: [["a", "man", "is", "cooking"], ["someone", "cooks"]],
            names[1]: [["a", "cat", "plays"]],
            "other_1_2": [["not", "in", "test"]],
        }
    (root / "raw-captions.pkl").write_bytes(pickle.dumps(captions))
    for name in names:
        write_clip(root / f"YouTubeClips/{name}.avi")
    return root


def write_flickr30k(root: Path) -> Path:
    """dataset_flickr30k.json (Karpathy) + flickr30k-images/."""
    images = []
    sentid = 0
    for imgid, (name, split) in enumerate(
        [("1000092795.jpg", "test"), ("10002456.jpg", "test"), ("1000268201.jpg", "train")]
    ):
        sentences = []
        for j in range(2):
            sentences.append({"tokens": ["two", "men", str(j)], "raw": f"Two men {imgid}-{j}.", "imgid": imgid,
                              "sentid": sentid})  # fmt: skip
            sentid += 1
        images.append({"sentids": [s["sentid"] for s in sentences], "imgid": imgid, "sentences": sentences,
                       "split": split, "filename": name})  # fmt: skip
        _jpg(root / "flickr30k-images" / name)
    (root / "dataset_flickr30k.json").write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
    return root


def write_genecis(root: Path) -> Path:
    """genecis/{focus,change}_{attribute,object}.json + val2017/ + VG_100K_all/."""
    for i in (189213, 153527, 121506, 536947):
        _jpg(root / "val2017" / f"{i:012d}.jpg")
    for i in (1, 2, 3):
        _jpg(root / "VG_100K_all" / f"{i}.jpg", size=(100, 80))
    obj = [
        {"condition": "wall", "gallery": [{"val_image_id": 121506}, {"val_image_id": 536947}],
         "reference": {"val_image_id": 189213}, "target": {"val_image_id": 153527}},
    ]  # fmt: skip
    att = [
        {"condition": "red", "gallery": [{"image_id": 3, "instance_bbox": [0, 0, 50, 40]}],
         "reference": {"image_id": 1, "instance_bbox": [10, 10, 20, 30], "object_name": "car"},
         "target": {"image_id": 2, "instance_bbox": [30, 20, 40, 40]}},
    ]  # fmt: skip
    (root / "genecis").mkdir(parents=True, exist_ok=True)
    for name in ("change_object", "focus_object"):
        (root / f"genecis/{name}.json").write_text(json.dumps(obj))
    for name in ("change_attribute", "focus_attribute"):
        (root / f"genecis/{name}.json").write_text(json.dumps(att))
    return root


SUGARCREPE_SUBSETS = (
    "add_obj",
    "add_att",
    "replace_obj",
    "replace_att",
    "replace_rel",
    "swap_obj",
    "swap_att",
)


def write_sugarcrepe(root: Path) -> Path:
    """data/<subset>.json ({"0": {filename, caption, negative_caption}}) + val2017/."""
    _jpg(root / "val2017/000000544519.jpg")
    (root / "data").mkdir(parents=True, exist_ok=True)
    for subset in SUGARCREPE_SUBSETS:
        data = {
            "0": {"filename": "000000544519.jpg", "caption": "A girl with a green shirt.",
                  "negative_caption": "A girl with a blue shirt."},
            "1": {"filename": "000000544519.jpg", "caption": "A toothbrush.", "negative_caption": "Two toothbrushes."},
        }  # fmt: skip
        (root / f"data/{subset}.json").write_text(json.dumps(data))
    return root


def write_sharegpt4v(root: Path) -> Path:
    """LamRA's datas_for_validation.json ([{image_name, caption}]) + val_data/."""
    items = [{"image_name": f"sa_{i}.jpg", "caption": f"A long caption number {i}."} for i in range(3)]
    for item in items:
        _jpg(root / "val_data" / item["image_name"])
    (root / "datas_for_validation.json").write_text(json.dumps(items))
    return root


def write_urban1k(root: Path, n: int = 3) -> Path:
    """caption/<n>.txt (caption on the first line) + image/<n>.jpg."""
    (root / "caption").mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        (root / f"caption/{i}.txt").write_text(f"An urban street scene {i} with many details.\nsecond line\n")
        _jpg(root / f"image/{i}.jpg")
    return root


def write_visdial(root: Path) -> Path:
    """visdial_1.0_val.json + VisualDialog_val2018/VisualDialog_val2018_<id:012d>.jpg."""
    data = {
        "version": "1.0",
        "split": "val2018",
        "data": {
            "questions": ["is it sunny", "how many people", "any dogs"],
            "answers": ["yes", "two", "no"],
            "dialogs": [
                {"image_id": 185565, "caption": "a park",
                 "dialog": [{"question": 0, "answer": 0, "answer_options": [0, 1, 2], "gt_index": 0},
                            {"question": 1, "answer": 1, "answer_options": [0, 1, 2], "gt_index": 1}]},
                {"image_id": 284024, "caption": "a beach",
                 "dialog": [{"question": 2, "answer": 2, "answer_options": [0, 1, 2], "gt_index": 2}]},
            ],
        },
    }  # fmt: skip
    for i in (185565, 284024):
        _jpg(root / "VisualDialog_val2018" / f"VisualDialog_val2018_{i:012d}.jpg")
    (root / "visdial_1.0_val.json").write_text(json.dumps(data))
    return root


def write_ccneg(root: Path, n: int = 3) -> Path:
    """ccneg_preprocessed.pt (torch dict: image_paths, annotations) + the CC3M images it names."""
    import torch

    paths, annotations = [], []
    for i in range(n):
        rel = f"training/{i:07d}.jpg"
        _jpg(root / rel)
        paths.append(f"/workspace/datasets/cc3m/{rel}")
        annotations.append(
            {"json": {"caption": f"a dog on a sofa {i}", "key": f"{i:09d}"},
             "sop_data": {"negative-prompt": f"a dog, but not on a sofa {i}"}}
        )  # fmt: skip
    torch.save({"image_paths": paths, "annotations": annotations}, root / "ccneg_preprocessed.pt")
    return root
