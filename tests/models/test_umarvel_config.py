"""umarvel.json: defaults, round trip, and one-line errors for bad values."""

from __future__ import annotations

import json
import math

import pytest

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.umarvel_config import UmarvelConfig


def test_defaults_and_round_trip(tmp_path):
    cfg = UmarvelConfig(family="qwen2.5-vl")
    assert cfg.max_pixels == 300 * 28 * 28 and cfg.temperature == pytest.approx(0.05)
    assert cfg.log_temperature == pytest.approx(math.log(0.05)) and cfg.compression_prompt is None
    cfg.set_log_temperature(-2.5)
    cfg.save(tmp_path)
    again = UmarvelConfig.load(tmp_path)
    assert again == cfg and again.temperature == pytest.approx(math.exp(-2.5))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pooling": "max"}, "unknown pooling 'max'"),
        ({"pool_tokens": "text"}, "unknown pool_tokens 'text'"),
        ({"attention": "sliding"}, "unknown attention 'sliding'"),
        ({"position_ids": "alibi"}, "unknown position_ids 'alibi'"),
        ({"family": "llava"}, "unknown family 'llava'"),
        ({"min_pixels": 10, "max_pixels": 5}, "min_pixels 10 / max_pixels 5"),
    ],
)
def test_bad_values_are_one_line_errors(change, message):
    with pytest.raises(UmarvelError, match=message):
        UmarvelConfig(**{"family": "qwen2-vl", **change})


def test_unknown_or_missing_keys_name_the_file(tmp_path):
    (tmp_path / "umarvel.json").write_text(json.dumps({"family": "qwen2-vl", "poolng": "mean"}))
    with pytest.raises(UmarvelError, match=r"umarvel.json: unknown keys \['poolng'\]"):
        UmarvelConfig.load(tmp_path)
    (tmp_path / "umarvel.json").write_text(json.dumps({"pooling": "mean"}))
    with pytest.raises(UmarvelError, match="field 'family': missing key"):
        UmarvelConfig.load(tmp_path)
    (tmp_path / "umarvel.json").write_text("{not json")
    with pytest.raises(UmarvelError, match="unreadable JSON"):
        UmarvelConfig.load(tmp_path)


def test_pool_tokens_defaults_to_all_and_round_trips(tmp_path):
    assert UmarvelConfig(family="qwen2-vl").pool_tokens == "all"
    UmarvelConfig(family="qwen2-vl", pool_tokens="content").save(tmp_path)
    assert json.loads((tmp_path / "umarvel.json").read_text())["pool_tokens"] == "content"
    assert UmarvelConfig.load(tmp_path).pool_tokens == "content"
    # folders written before the option existed load as "all" (unchanged embeddings)
    (tmp_path / "umarvel.json").write_text(json.dumps({"family": "qwen2-vl"}))
    assert UmarvelConfig.load(tmp_path).pool_tokens == "all"
