"""`init-model --kind reranker --from MODEL`: a reranker whose network is an embedding model's."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from tests.models.test_reranker import CANDIDATES, QUERIES
from tests.models.tiny_models import TINY_BACKBONES
from umarvel_cli.app import app
from umarvel_cli.artifacts.manifest import read_manifest
from umarvel_cli.models.attention import language_model
from umarvel_cli.models.embedder import Embedder
from umarvel_cli.models.reranker import Reranker
from umarvel_cli.models.tiny import init_tiny_model
from umarvel_cli.models.umarvel_config import UmarvelConfig


def _init(*args: object) -> object:
    return CliRunner().invoke(app, ["init-model", *map(str, args)])


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_the_reranker_carries_the_embedders_network_and_settings(backbone, tmp_path):
    source = init_tiny_model(backbone, tmp_path / "emb", seed=5, pool_tokens="content")
    res = _init("--kind", "reranker", "--from", source, "--out", tmp_path / "rr")
    assert res.exit_code == 0 and res.stdout.startswith("wrote "), res.output
    emb = Embedder.from_pretrained(source, device="cpu")
    rr = Reranker.from_pretrained(tmp_path / "rr", device="cpu")
    theirs = emb.backbone.state_dict()
    ours = rr.model.model.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert torch.equal(rr.model.get_output_embeddings().weight, rr.model.get_input_embeddings().weight)
    settings = UmarvelConfig.load(tmp_path / "rr")
    assert settings.extra["kind"] == "reranker" and settings.attention == UmarvelConfig.load(source).attention
    assert language_model(rr.model).config.is_causal is (settings.attention == "causal")
    p = rr.score([(QUERIES[0], CANDIDATES[0]), (QUERIES[1], CANDIDATES[1])])
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()
    manifest = read_manifest(tmp_path / "rr")
    assert manifest.stage == "init-model" and manifest.params["from"] == str(source)
    assert set(manifest.inputs) == {"model"}
    again = _init("--kind", "reranker", "--from", source, "--out", tmp_path / "rr")
    assert again.exit_code == 0 and again.stdout.startswith("up to date:")


def test_from_needs_an_embedding_model_and_the_reranker_kind(tmp_path):
    source = init_tiny_model("tiny-qwen2-vl", tmp_path / "emb", seed=5)
    reranker = init_tiny_model("tiny-qwen2-vl", tmp_path / "rr0", kind="reranker")
    cases = [
        (["--from", source, "--out", tmp_path / "a"], "--from makes a reranker"),
        (["--kind", "reranker", "--from", reranker, "--out", tmp_path / "b"], "this is a reranker"),
        (
            ["--kind", "reranker", "--from", tmp_path / "none", "--out", tmp_path / "c"],
            "model folder not found",
        ),
        (["--out", tmp_path / "d"], "needs --backbone"),
    ]
    for args, message in cases:
        res = _init(*args)
        assert res.exit_code == 2 and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not any((tmp_path / name).exists() for name in "abcd")
