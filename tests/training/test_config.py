"""Config resolution: shipped stage defaults, profile, user file, --set (plain and stage-prefixed)."""

from __future__ import annotations

import math

import pytest

from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.config import parse_sets, resolve_config
from umarvel_cli.training.schedule import lr_lambda, warmup_steps


def test_paper_defaults_per_stage():
    nli, cap, mb = (resolve_config(s) for s in ("nli", "caption", "mbeir"))
    assert (nli.lora_rank, nli.lora_alpha, nli.lr, nli.epochs) == (64, 128, 2e-4, 2)
    assert (cap.lora_rank, cap.lora_alpha, cap.lr, cap.epochs) == (128, 256, 1e-4, 1)
    assert (mb.lora_rank, mb.lr, mb.batch_size) == (128, 4e-4, 3840)
    assert not nli.learn_temperature and not cap.learn_temperature and mb.learn_temperature
    assert cap.bidirectional and not nli.bidirectional and not mb.bidirectional
    assert nli.hard_negatives == 1 and mb.instruction == "random" and nli.instruction == "none"
    assert all(
        c.temperature == 0.05 and c.warmup_ratio == 0.03 and c.weight_decay == 0 for c in (nli, cap, mb)
    )


def test_override_order(tmp_path):
    user = tmp_path / "u.yaml"
    user.write_text("lr: 1.0e-3\nbatch_size: 64\nmbeir:\n  lr: 5.0e-4\n")
    mb = resolve_config("mbeir", "demo", user, ["batch_size=16", "mbeir.batch_size=8", "nli.lr=9"])
    assert mb.lr == 5e-4  # stage section beats top level
    assert mb.batch_size == 8  # stage-prefixed --set beats plain --set beats the file
    assert mb.lora_rank == 16  # from the demo profile
    nli = resolve_config("nli", "demo", user, ["nli.lr=9"])
    assert nli.lr == 9.0 and nli.batch_size == 64


def test_set_values_are_yaml_and_typed():
    cfg = resolve_config(
        "nli", sets=["lora_targets=[q_proj, v_proj]", "max_steps=null", "lr=1", "adam_eps=1e-6"]
    )
    assert cfg.lora_targets == ["q_proj", "v_proj"] and cfg.max_steps is None and cfg.lr == 1.0
    assert cfg.adam_eps == 1e-6  # "1e-6" is a string to YAML 1.1; a float field still takes it
    assert parse_sets(["caption.epochs=3"]) == [("caption", "epochs", 3)]


@pytest.mark.parametrize(
    "sets, message",
    [
        (["nosuch=1"], "unknown config key 'nosuch'"),
        (["epochs=1.5"], "wrong type"),
        (["lora=yes please"], "wrong type"),
        (["batching=random"], "not a choice"),
        (["lr"], "not key=value"),
        (["listwise.lr=1"], "unknown stage prefix"),
        (["temperature=5"], "outside"),
        (["batch_size=10", "grad_accum=3"], "not divisible"),
        (["rerank_random_negatives=1.5"], r"rerank_random_negatives must be in \[0, 1\]"),
    ],
)
def test_bad_overrides(sets, message):
    with pytest.raises(UmarvelError, match=message):
        resolve_config("nli", sets=sets)


def test_hardneg_stage_defaults_are_the_papers_and_the_demo_profile_small():
    paper = resolve_config("hardneg")
    assert (paper.batch_size, paper.hard_negatives, paper.lr, paper.epochs) == (1088, 5, 1.5e-5, 1)
    assert paper.lora and paper.lora_rank == 128 and paper.learn_temperature and paper.save_every == 600
    demo = resolve_config("hardneg", "demo", sets=["hardneg.lr=1e-4", "mbeir.lr=9"])
    assert demo.batch_size == 16 and demo.hard_negatives == 5 and not demo.lora and demo.lr == 1e-4
    assert resolve_config("mbeir", "demo", sets=["hardneg.lr=1e-4"]).lr == 2e-3


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(UmarvelError, match="mapping"):
        resolve_config("nli", config_file=bad)
    with pytest.raises(UmarvelError, match="unknown profile"):
        resolve_config("nli", profile="huge")


def test_warmup_then_cosine_to_zero():
    f = lr_lambda(total_steps=100, warmup=warmup_steps(100, 0.03))
    assert warmup_steps(100, 0.03) == 3
    assert [round(f(s), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(3 + 47) == pytest.approx(0.5 * (1 + math.cos(math.pi * 47 / 97)))
    assert f(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 96 / 97))) and f(100) == pytest.approx(0.0)
    assert lr_lambda(10, 0, "constant")(7) == 1.0


def test_size_sections_of_the_demo_profile():
    """`sizes: tiny:` scales the tiny demo's steps; the user's own keys win; small has no section (its
    scores stay those of the profile's stage sections)."""
    from umarvel_cli.training.config import size_sets

    tiny = size_sets("demo", "tiny")
    assert tiny and all(s.split(".", 1)[0] in ("nli", "caption", "mbeir") for s in tiny)
    assert size_sets("demo", "small", ["lr=1"]) == ["lr=1"] and size_sets("paper", "tiny") == []
    epochs = {s: resolve_config(s, "demo", sets=tiny).epochs for s in ("nli", "caption", "mbeir")}
    assert epochs == {"nli": 16, "caption": 16, "mbeir": 24}
    assert resolve_config("mbeir", "demo", sets=size_sets("demo", "small")).epochs == 4
    # a key the user sets, bare or for the stage, is not overridden by the size section
    mine = size_sets("demo", "tiny", ["epochs=2", "mbeir.lr=0.5"])
    assert mine[-2:] == ["epochs=2", "mbeir.lr=0.5"] and not any("epochs=" in s for s in mine[:-2])
    cfg = resolve_config("mbeir", "demo", sets=mine)
    assert (cfg.epochs, cfg.lr) == (2, 0.5)
    assert "mbeir.epochs=24" not in size_sets("demo", "tiny", ["mbeir.epochs=3"])
    assert "nli.epochs=16" in size_sets("demo", "tiny", ["mbeir.epochs=3"])
