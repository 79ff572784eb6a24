"""End to end on a CPU: the whole demo pipeline on tiny data, then a second run that redoes nothing."""

from __future__ import annotations

import json

import pytest

from umarvel_cli.artifacts import read_manifest
from umarvel_cli.demo import DEMO_STAGES, run_demo

pytestmark = pytest.mark.slow

FAST = ["max_steps=3", "batch_size=8", "save_every=2"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, size="tiny", train_overrides=FAST)


def test_every_step_runs_and_every_model_is_scored(demo_run):
    out, result = demo_run
    done = {name for name, status in result.steps if status == "done"}
    for step in [
        "prepare demo",
        "prepare mbeir",
        "prepare pairs (nli)",
        "prepare pairs (caption)",
        "eval init (zero-shot)",
    ]:
        assert step in done
    assert "train --stage progressive" in done
    assert set(result.scores) == {"init", *DEMO_STAGES}
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    report = (out / "report.md").read_text()
    assert "| mbeir |" in report and "not in this release" in report
    assert (out / "progression.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "eval" / "mbeir" / "metrics.json").is_file()
    assert json.loads((out / "demo_scores.json").read_text()) == pytest.approx(result.scores)


def test_stages_chain_from_the_previous_merged_model(demo_run):
    out, _ = demo_run
    caption = read_manifest(out / "train" / "caption")
    mbeir = read_manifest(out / "train" / "mbeir")
    assert caption is not None and mbeir is not None
    assert caption.extra["init_model"] == str(out / "train" / "nli" / "model")
    assert mbeir.extra["init_model"] == str(out / "train" / "caption" / "model")
    # learnable temperature from the mbeir stage on, kept in the merged model folder
    saved = json.loads((out / "train" / "mbeir" / "model" / "umarvel.json").read_text())
    assert "temperature" in json.dumps(saved)


def test_second_run_is_up_to_date(demo_run):
    out, first = demo_run
    before = {p: read_manifest(p).created for p in [out / "tables", out / "train" / "mbeir"]}
    again = run_demo(out, size="tiny", train_overrides=FAST)
    assert again.scores == pytest.approx(first.scores)
    assert {p: read_manifest(p).created for p in before} == before
