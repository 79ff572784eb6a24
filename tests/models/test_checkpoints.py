"""Loading plain Hugging Face folders: no umarvel.json, the legacy Qwen2-VL key layout, missing weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.embedder import Embedder


def _legacy_copy(src, dst, drop: str | None = None):
    """The released Qwen2-VL checkpoints' layout: model.layers.*, visual.*, lm_head (a ...ForConditionalGeneration)."""
    shutil.copytree(src, dst)
    (dst / "umarvel.json").unlink()
    state = load_file(src / "model.safetensors")
    legacy = {
        ("model." + k.removeprefix("language_model.")) if k.startswith("language_model.") else k: v
        for k, v in state.items()
    }
    legacy["lm_head.weight"] = state["language_model.embed_tokens.weight"].clone()
    if drop:
        del legacy[drop]
    save_file(legacy, dst / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((dst / "config.json").read_text())
    cfg["architectures"] = ["Qwen2VLForConditionalGeneration"]
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_a_legacy_checkpoint_without_umarvel_json_loads_with_defaults(tiny_models, tiny_embedders, tmp_path):
    folder = _legacy_copy(tiny_models["tiny-qwen2-vl"], tmp_path / "legacy")
    emb = Embedder.from_pretrained(folder, device="cpu")
    assert emb.config.family == "qwen2-vl" and emb.config.pooling == "mean"
    assert emb.config.attention == "bidirectional" and emb.config.max_pixels == 300 * 28 * 28
    recs = [Record("a", "hello there"), Record("b", "two words")]
    np.testing.assert_allclose(emb.encode(recs), tiny_embedders["tiny-qwen2-vl"].encode(recs), atol=1e-6)


def test_missing_weights_are_an_error_not_a_random_init(tiny_models, tmp_path):
    folder = _legacy_copy(tiny_models["tiny-qwen2-vl"], tmp_path / "broken", drop="model.norm.weight")
    with pytest.raises(UmarvelError, match=r"1 weights of Qwen2VLModel are not in the checkpoint"):
        Embedder.from_pretrained(folder, device="cpu")


def test_unsupported_or_missing_folders(tmp_path):
    with pytest.raises(UmarvelError, match="model folder not found"):
        Embedder.from_pretrained(tmp_path / "nope")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UmarvelError, match="model_type 'bert' is not a supported backbone"):
        Embedder.from_pretrained(tmp_path / "bert")
