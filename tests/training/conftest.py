"""Fixtures for trainer tests: a small pairs table of paraphrases the toy encoder can learn."""

from __future__ import annotations

import dataclasses

import pytest

from umarvel_cli.artifacts import TABLES, Manifest, ShardWriter, write_manifest
from umarvel_cli.training.config import resolve_config

COLOURS = ["red", "green", "blue", "yellow", "black", "white", "purple", "orange"]
THINGS = ["car", "house", "bird", "cup", "tree", "boat", "chair", "lamp"]


def pair_rows(kind: str = "nli") -> list[dict]:
    rows = []
    for i, c in enumerate(COLOURS):
        for j, t in enumerate(THINGS):
            rows.append(
                {
                    "pair_id": f"{kind}-{i}-{j}",
                    "kind": kind,
                    "query_text": f"the {t} is {c}",
                    "query_image": None,
                    "pos_text": f"a {c} {t}",
                    "pos_image": None,
                    "neg_text": f"the {t} is not {c}",
                    "neg_image": None,
                }
            )
    return rows


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    with ShardWriter(root, "pairs", TABLES["pairs"], rows_per_shard=40) as w:
        w.write_rows(pair_rows("nli") + pair_rows("caption"))
    write_manifest(root, Manifest(stage="prepare-pairs", params={}, counts={"pairs": w.rows_written}))
    return root


def toy_config(**changes):
    base = resolve_config("nli", "paper")
    defaults = dict(
        lora=False,
        batch_size=16,
        epochs=3,
        lr=3e-2,
        warmup_ratio=0.1,
        save_every=4,
        gradient_checkpointing=False,
        loss_impl="plain",
    )
    return dataclasses.replace(base, **{**defaults, **changes})


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny Qwen2-VL folder (shared with the model tests' session copy)."""
    from tests.models.tiny_models import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")


@pytest.fixture(scope="session")
def demo_pairs(demo_root, tmp_path_factory):
    """{kind: pairs table folder} prepared from the tiny demo's NLI csv and caption jsonl."""
    from umarvel_cli.data.pairs import prepare_pairs

    base = tmp_path_factory.mktemp("demo_pairs")
    src = demo_root / "pairs"
    prepare_pairs(src / "nli.csv", base / "nli", "nli")
    prepare_pairs(src / "captions.jsonl", base / "caption", "caption")
    return {"nli": base / "nli", "caption": base / "caption"}
