"""The training loop on a toy encoder: it learns, resumes bit-for-bit, and GradCache changes nothing."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp

from tests.training.conftest import toy_config
from tests.training.toy import ToyEncoder
from umarvel_cli.errors import UmarvelError
from umarvel_cli.training.data import PairsSet
from umarvel_cli.training.objectives import InBatchInfoNCE
from umarvel_cli.training.trainer import Trainer

CPU = torch.device("cpu")


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _train(pairs_dir, out, cfg, on_step=None, resume=False, seed=0):
    model = ToyEncoder(dropout=0.1, seed=seed)
    data = PairsSet(pairs_dir, "nli", cfg.hard_negatives)
    trainer = Trainer(model, data, cfg, InBatchInfoNCE.from_config(cfg), out, CPU, on_step=on_step)
    summary = trainer.fit(resume=resume)
    return model, summary


def test_loss_goes_down_and_every_step_is_logged(pairs_dir, tmp_path):
    cfg = toy_config()
    model, summary = _train(pairs_dir, tmp_path, cfg)
    rows = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert summary.steps == 12 == len(rows)  # 64 examples // 16 x 3 epochs
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert all(r["temperature"] == pytest.approx(0.05) for r in rows)  # fixed temperature
    assert {"loss", "temperature", "lr", "samples_per_s", "epoch"} <= set(rows[0])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000008", "step-00000012"]


def test_killed_run_resumes_to_the_same_weights(pairs_dir, tmp_path):
    cfg = toy_config(learn_temperature=True, hard_negatives=1)
    ref, _ = _train(pairs_dir, tmp_path / "a", cfg)

    def crash(step, row):
        if step == 7:  # last checkpoint at 4: steps 5..7 are lost and redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(pairs_dir, tmp_path / "b", cfg, on_step=crash)
    resumed, summary = _train(pairs_dir, tmp_path / "b", cfg, resume=True, seed=99)  # other init: overwritten
    assert summary.resumed_from == 4
    for name, value in _params(ref).items():
        torch.testing.assert_close(_params(resumed)[name], value, rtol=0, atol=1e-7, msg=name)
    a = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in b] == list(range(1, 13))
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)
    assert ref.log_temperature.item() != pytest.approx(torch.tensor(0.05).log().item())  # it learned


def test_gradcache_steps_equal_plain_steps(pairs_dir, tmp_path):
    plain, _ = _train(
        pairs_dir, tmp_path / "plain", toy_config(epochs=1, hard_negatives=1, bidirectional=True)
    )
    cached, _ = _train(
        pairs_dir,
        tmp_path / "cached",
        toy_config(epochs=1, hard_negatives=1, bidirectional=True, chunk_size=3),
    )
    for name, value in _params(plain).items():
        torch.testing.assert_close(_params(cached)[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_temperature_is_clamped(pairs_dir, tmp_path):
    cfg = toy_config(epochs=1, learn_temperature=True, temperature_lr=5.0, temperature_max=0.06)
    model, summary = _train(pairs_dir, tmp_path, cfg)
    assert 0.01 <= summary.temperature <= 0.06 + 1e-6
    assert model.log_temperature.exp().item() <= 0.06 + 1e-6


def test_batch_larger_than_data_is_an_error(pairs_dir, tmp_path):
    with pytest.raises(UmarvelError, match="larger than the data"):
        _train(pairs_dir, tmp_path, toy_config(batch_size=128))


def _ddp_worker(rank: int, world: int, init_file: str, pairs_dir: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        cfg = toy_config(epochs=1, hard_negatives=1, bidirectional=True, learn_temperature=True)
        model = ToyEncoder(dropout=0.0)
        Trainer(model, PairsSet(pairs_dir, "nli", 1), cfg, InBatchInfoNCE.from_config(cfg), out, CPU).fit()
        if rank == 0:
            torch.save(_params(model), f"{out}/params.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_train_the_same_weights_as_one_process(pairs_dir, tmp_path):
    cfg = toy_config(epochs=1, hard_negatives=1, bidirectional=True, learn_temperature=True)
    single = ToyEncoder(dropout=0.0)
    objective = InBatchInfoNCE.from_config(cfg)
    Trainer(single, PairsSet(pairs_dir, "nli", 1), cfg, objective, tmp_path / "one", CPU).fit()
    out = tmp_path / "two"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(pairs_dir), str(out)), nprocs=2, join=True)
    got = torch.load(out / "params.pt")
    for name, value in _params(single).items():
        # AdamW divides by sqrt(v): an entry with a near-zero gradient turns fp32 reordering of the
        # two-rank sums into up to ~1e-5 of weight (measured 9.2e-6, one of 16384 entries)
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=2e-5, msg=name)
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4  # rank 0 logs each step once
    assert (out / "checkpoints" / "step-00000004" / "rng-1.pt").is_file()  # per-rank RNG state
