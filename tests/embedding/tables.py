"""A small prepared-data folder (queries, candidates, pools, instructions, images) for embed tests."""

from __future__ import annotations

from pathlib import Path

from tests.models.tiny_models import random_image
from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, write_manifest


def _write(root: Path, table: str, rows: list[dict]) -> None:
    with ShardWriter(root, table, TABLES[table], rows_per_shard=4) as w:
        w.write_rows(rows)


def build_tables(root: Path, bad: bool = False) -> Path:
    """`bad=True` adds a candidate with a missing image, one with an unreadable image, one empty."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        random_image(100 + i, 40 + 12 * i, 70 - 5 * i).save(images / f"img{i}.png")
    (images / "broken.jpg").write_bytes(b"not an image at all")
    q = dict(src_content=None, neg=[])
    queries = [
        dict(
            qid="9:1",
            split="test",
            task_id=0,
            dataset_id=9,
            modality="text",
            text="a red bus",
            image=None,
            pos=["9:100"],
            **q,
        ),
        dict(
            qid="9:2",
            split="test",
            task_id=0,
            dataset_id=9,
            modality="text",
            text="two dogs playing",
            image=None,
            pos=["9:101"],
            **q,
        ),
        dict(
            qid="9:3",
            split="test",
            task_id=3,
            dataset_id=9,
            modality="image",
            text=None,
            image="img0.png",
            pos=["9:102"],
            **q,
        ),
        dict(
            qid="9:4",
            split="test",
            task_id=3,
            dataset_id=9,
            modality="image",
            text=None,
            image="img1.png",
            pos=["9:103"],
            **q,
        ),
        dict(
            qid="8:5",
            split="test",
            task_id=7,
            dataset_id=8,
            modality="image,text",
            text="make it blue",
            image="img2.png",
            pos=["9:100"],
            **q,
        ),
        dict(
            qid="8:6",
            split="test",
            task_id=7,
            dataset_id=8,
            modality="image,text",
            text="remove the cat",
            image="img3.png",
            pos=["9:101"],
            **q,
        ),
        dict(
            qid="9:7",
            split="test",
            task_id=0,
            dataset_id=9,
            modality="text",
            text="a long caption " * 5,
            image=None,
            pos=["9:102"],
            **q,
        ),
        dict(
            qid="9:8",
            split="val",
            task_id=0,
            dataset_id=9,
            modality="text",
            text="val query",
            image=None,
            pos=["9:100"],
            **q,
        ),
        dict(
            qid="9:9",
            split="val",
            task_id=0,
            dataset_id=9,
            modality="text",
            text="another val query",
            image=None,
            pos=["9:100"],
            **q,
        ),
    ]
    candidates = [
        dict(did="9:100", modality="image", text=None, image="img0.png", src_content=None),
        dict(did="9:101", modality="image", text=None, image="img1.png", src_content=None),
        dict(did="9:102", modality="text", text="a caption about a bus", image=None, src_content=None),
        dict(did="9:103", modality="text", text="dogs in a park", image=None, src_content=None),
        dict(
            did="9:104", modality="image,text", text="a photo with words", image="img4.png", src_content=None
        ),
        dict(did="9:105", modality="image", text=None, image="img5.png", src_content=None),
        dict(did="9:106", modality="text", text="yet another text candidate", image=None, src_content=None),
        dict(did="9:107", modality="text", text="short", image=None, src_content=None),
    ]
    if bad:
        candidates += [
            dict(did="9:900", modality="image", text=None, image="missing.png", src_content=None),
            dict(did="9:901", modality="image", text=None, image="broken.jpg", src_content=None),
            dict(did="9:902", modality="text", text="  ", image=None, src_content=None),
        ]
    pools = [dict(pool="mscoco_task0_test", did=d) for d in ("9:100", "9:101", "9:104", "9:105")]
    pools += [dict(pool="all_text", did=d) for d in ("9:102", "9:103", "9:106", "9:107")]
    instructions = [
        dict(
            dataset_id=9,
            dataset_name="mscoco",
            query_modality="text",
            cand_modality="image",
            prompts=[
                "Find me an everyday image that matches the given caption.",
                "Show me a matching image.",
            ],
        ),
        dict(
            dataset_id=9,
            dataset_name="mscoco",
            query_modality="image",
            cand_modality="text",
            prompts=["Find an image caption describing the following everyday image."],
        ),
        dict(
            dataset_id=8,
            dataset_name="cirr",
            query_modality="image,text",
            cand_modality="image",
            prompts=["Retrieve an image with the described changes."],
        ),
    ]
    for table, rows in [
        ("queries", queries),
        ("candidates", candidates),
        ("pools", pools),
        ("instructions", instructions),
    ]:
        _write(root, table, rows)
    write_manifest(root, Manifest(stage="prepare", params={}, extra={"images_root": str(images)}))
    return root
