"""Shared fixtures. Tests never touch the network: models and data are built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread: the tests' tensors are tiny, and on the shared 2-core box a second OpenMP thread
# that is descheduled stalls every op (a training-stage test took 24 s with two threads, 2.6 s with one,
# at load 12). Set before anything imports torch; the subprocesses tests start inherit it. The GPU
# device check keeps torch's default.
if os.environ.get("UMARVEL_TEST_ON_GPU") != "1":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# Kernel tests run Triton's CPU interpreter. triton decides at import (decoration) time whether its own
# library functions are interpreted, so the variable must be set before anything imports triton;
# UMARVEL_TEST_ON_GPU=1 runs the kernels compiled instead (on a CUDA machine).
if os.environ.get("UMARVEL_TEST_ON_GPU") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def demo_counts(tmp_path_factory) -> tuple[Path, dict]:
    """The tiny demo (seed 0) written once per session, with the counts `generate_demo` returned."""
    from umarvel_cli.data.demo import generate_demo

    root = tmp_path_factory.mktemp("demo") / "M-BEIR"
    return root, generate_demo(root, seed=0, size="tiny")


@pytest.fixture(scope="session")
def demo_root(demo_counts) -> Path:
    """A tiny demo M-BEIR tree (seed 0); read-only: copy it before editing."""
    return demo_counts[0]


@pytest.fixture(scope="session")
def demo_tables(demo_root, tmp_path_factory) -> Path:
    """The tiny demo read by `prepare mbeir` (all splits), once per session; read-only."""
    from umarvel_cli.data.mbeir.reader import prepare_mbeir

    out = tmp_path_factory.mktemp("demo_tables")
    prepare_mbeir(demo_root, out)
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{backbone: folder} for the three tiny families, built once per session."""
    from tests.models.tiny_models import TINY_BACKBONES, tiny_model_dir

    base = tmp_path_factory.getbasetemp() / "tiny-models"
    return {b: tiny_model_dir(base, b) for b in TINY_BACKBONES}


@pytest.fixture(scope="session")
def tiny_embedders(tiny_models):
    """{backbone: Embedder} loaded once (CPU, fp32). Tests must not mutate them."""
    from umarvel_cli.models.embedder import Embedder

    return {b: Embedder.from_pretrained(p, device="cpu") for b, p in tiny_models.items()}


@pytest.fixture(scope="session")
def demo_mined(demo_tables, tmp_path_factory) -> tuple[Path, Path]:
    """(model, mined folder): 3 negatives per tiny-demo train query, mined with the tiny Qwen2-VL."""
    from tests.models.tiny_models import tiny_model_dir
    from umarvel_cli.mining import make_settings, run_mine

    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    out = tmp_path_factory.mktemp("demo_mined") / "mined"
    settings = make_settings(topk=20, rank_range="1-20", num_negatives=3)
    run_mine(model, demo_tables, out, settings, embeddings=out.parent / "emb")
    return model, out
