"""`run_ablations` on the tiny demo: two switches, one seed, one training step per stage: the files it
writes, the table's rows and numbers, and that each alternative differs from the default in exactly
the thing it switches."""

from __future__ import annotations

import json

import pytest
import yaml

from umarvel_cli.ablations import SWITCHES, mean_se, run_ablations
from umarvel_cli.artifacts import read_manifest
from umarvel_cli.errors import UmarvelError

FAST = ["max_steps=1", "batch_size=4", "save_every=1"]


@pytest.fixture(scope="module")
def ablated(demo_tables, demo_root, tmp_path_factory):
    from umarvel_cli.data.pairs import prepare_pairs

    out = tmp_path_factory.mktemp("ablate")
    (out / "tables").symlink_to(demo_tables)
    prepare_pairs(demo_root / "pairs" / "nli.csv", out / "pairs_nli", "nli")
    prepare_pairs(demo_root / "pairs" / "captions.jsonl", out / "pairs_caption", "caption")
    return out, run_ablations(
        out, size="tiny", seeds=(0,), switches=["pooling", "temperature"], train_overrides=FAST
    )


def test_writes_the_report_json_and_chart_with_one_row_per_switch(ablated):
    out, result = ablated
    folder = out / "ablations"
    assert result.report == folder / "report.md"
    assert (folder / "ablations.png").read_bytes().startswith(b"\x89PNG")
    record = json.loads((folder / "ablations.json").read_text())
    assert (record["split"], record["pool"], record["seeds"]) == ("test", "local", [0])
    assert [r["switch"] for r in record["rows"]] == ["pooling", "temperature"]
    report = result.report.read_text()
    for row in record["rows"]:
        switch = SWITCHES[row["switch"]]
        assert (row["default"], row["alternative"]) == (switch.default, switch.alternative)
        assert row["delta_mean"] == pytest.approx(row["default_mean"] - row["alternative_mean"])
        line = f"| {row['switch']} | {switch.default} | {switch.alternative} | mbeir | {row['default_mean']:.4f} ± 0.0000"
        assert line in report


def test_scores_are_the_evaluations_of_each_variant(ablated):
    out, result = ablated
    default = json.loads((out / "ablations/default/seed0/eval/mbeir/metrics.json").read_text())
    last = json.loads((out / "ablations/pooling/last-token/seed0/eval/model/metrics.json").read_text())
    assert result.scores["pooling"]["mean"][0] == default["headline"]["mean"]
    assert result.scores["temperature"]["learnable"][0] == default["headline"]["mean"]
    assert result.scores["pooling"]["last-token"][0] == last["headline"]["mean"]
    assert default["split"] == last["split"] == "test" and default["pool"] == "local"


def test_each_alternative_differs_from_the_default_in_its_switch_only(ablated):
    out, _ = ablated
    base, root = out / "ablations/default/seed0", out / "ablations"
    umarvel = {
        name: json.loads((folder / "models/init/umarvel.json").read_text())
        for name, folder in (("default", base), ("last", root / "pooling/last-token/seed0"))
    }
    assert (umarvel["default"]["pooling"], umarvel["last"]["pooling"]) == ("mean", "last")
    assert {k: v for k, v in umarvel["last"].items() if k != "pooling"} == {
        k: v for k, v in umarvel["default"].items() if k != "pooling"
    }
    assert read_manifest(root / "pooling/last-token/seed0/models/init").params["settings"] == {
        "pooling": "last"
    }
    configs = {
        name: yaml.safe_load((folder / "train/mbeir/config.yaml").read_text())
        for name, folder in (("default", base), ("fixed", root / "temperature/fixed/seed0"))
    }
    assert configs["default"]["learn_temperature"] and not configs["fixed"]["learn_temperature"]
    assert {k: v for k, v in configs["fixed"].items() if k != "learn_temperature"} == {
        k: v for k, v in configs["default"].items() if k != "learn_temperature"
    }
    # the fixed-temperature run starts from the default chain's caption model
    fixed = read_manifest(root / "temperature/fixed/seed0/train/mbeir")
    assert fixed.extra["init_model"] == str(base / "train/caption/model")


def test_a_second_run_is_up_to_date(ablated):
    out, first = ablated
    stamp = read_manifest(out / "ablations/pooling/last-token/seed0/train/mbeir").created
    again = run_ablations(out, size="tiny", seeds=(0,), switches=["pooling"], train_overrides=FAST)
    assert again.scores["pooling"] == first.scores["pooling"]
    assert read_manifest(out / "ablations/pooling/last-token/seed0/train/mbeir").created == stamp


def test_unknown_switch_and_missing_data_are_one_line_errors(tmp_path):
    with pytest.raises(UmarvelError, match="unknown ablation 'polling'"):
        run_ablations(tmp_path, size="tiny", switches=["polling"])
    with pytest.raises(UmarvelError, match="run `umarvel demo` first"):
        run_ablations(tmp_path, size="tiny", switches=["pooling"])


def test_mean_and_standard_error():
    assert mean_se([0.5]) == (0.5, 0.0)
    mean, se = mean_se([0.2, 0.4])
    assert mean == pytest.approx(0.3) and se == pytest.approx(0.1)  # sd 0.1414 / sqrt(2)
