from __future__ import annotations

import pytest

from tests.models.tiny_models import TINY_BACKBONES, tiny_model_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{backbone: folder} for the three tiny families."""
    base = tmp_path_factory.getbasetemp() / "tiny-models"
    return {b: tiny_model_dir(base, b) for b in TINY_BACKBONES}


@pytest.fixture(scope="session")
def tiny_embedders(tiny_models):
    """{backbone: Embedder} loaded once (CPU, fp32). Tests must not mutate them."""
    from umarvel_cli.models.embedder import Embedder

    return {b: Embedder.from_pretrained(p, device="cpu") for b, p in tiny_models.items()}


@pytest.fixture(scope="session")
def embed_tables(tmp_path_factory):
    """Prepared-style tables: 7 test + 2 val queries, 8 candidates in two pools, instructions, images."""
    from tests.embedding.tables import build_tables

    return build_tables(tmp_path_factory.mktemp("embed-tables"))
