from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embed_tables(tmp_path_factory):
    """Prepared-style tables: 7 test + 2 val queries, 8 candidates in two pools, instructions, images."""
    from tests.embedding.tables import build_tables

    return build_tables(tmp_path_factory.mktemp("embed-tables"))
