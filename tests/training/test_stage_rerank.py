"""The rerank stage on the tiny demo: a tiny generative model and mined negatives in; a reranker folder
(model/, adapter/ with LoRA, manifest naming the mined table and the base model) out; the answer-token
loss falls on a repeated batch; resume after a kill; one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.models.reranker import Reranker
from umarvel_cli.models.tiny import init_tiny_model
from umarvel_cli.training.config import resolve_config
from umarvel_cli.training.objectives import RerankAnswerCE
from umarvel_cli.training.rerank_data import RerankSet
from umarvel_cli.training.stages import StageRequest, run_stage

SETS = ["batch_size=4", "max_steps=4", "save_every=2", "lr=1e-3"]


def _req(model, out, data, negatives, sets=()):
    return StageRequest(
        stage="rerank", model=model, out=out, data=data, profile="demo",
        sets=[*SETS, *sets], device="cpu", negatives=negatives,
    )  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return init_tiny_model("tiny-qwen2-vl", tmp_path_factory.mktemp("rr") / "base", seed=1, kind="reranker")


@pytest.fixture(scope="module")
def trained(base, demo_mined, demo_tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("rerank") / "run"
    return run_stage(_req(base, out, demo_tables, demo_mined[1])), out


def test_trains_a_reranker_folder_and_names_its_inputs(trained, base, demo_mined, demo_tables):
    (retriever, mined), (result, out) = demo_mined, trained
    assert result.status == "fresh" and not (out / "checkpoints").exists()
    manifest = read_manifest(out)
    data = RerankSet(demo_tables, mined, "random", 42)
    assert manifest.stage == "train-rerank"
    assert manifest.counts == {"examples": len(data), "steps": 4}
    assert manifest.inputs["negatives"] == fingerprint(mined) and manifest.inputs["model"] == fingerprint(
        base
    )
    assert manifest.extra["negatives"] == str(mined.resolve())
    assert manifest.extra["negatives_model"] == str(retriever.resolve())
    assert manifest.extra["base_model"] == str(base) and manifest.extra["temperature"] is None
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4] and all("temperature" not in r for r in log)
    assert all(0 < row["loss"] < 20 for row in log)
    before, after = load_file(base / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rr = Reranker.from_pretrained(out / "model", device="cpu")
    assert rr.prompt == "clean" and rr.config.extra["kind"] == "reranker"
    ex = data.example(0, 0)
    p = rr.score([(ex.query, ex.positive), (ex.query, ex.negatives[0])])
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()


def test_examples_pair_each_query_with_a_positive_and_a_mined_negative(demo_mined, demo_tables):
    from umarvel_cli.artifacts import read_table

    mined = read_table(demo_mined[1], "mined", ["qid", "pos_ids", "top_neg_ids"]).to_pylist()
    rows = {r["qid"]: r for r in mined}
    data = RerankSet(demo_tables, demo_mined[1], "random", 42)
    for i in range(len(data)):
        ex = data.example(i, 0)
        row = rows[ex.query.id]
        assert ex.positive.id in row["pos_ids"]
        assert [n.id for n in ex.negatives] == ex.neg_keys and ex.neg_keys[0] in row["top_neg_ids"]
        assert ex.neg_keys[0] not in row["pos_ids"] and ex.query.instruction
    again = RerankSet(demo_tables, demo_mined[1], "random", 42)
    assert [again.example(i, 1).neg_keys for i in range(len(data))] == [
        data.example(i, 1).neg_keys for i in range(len(data))
    ]  # seeded: a resumed run draws the same pairs


def test_random_share_draws_other_queries_positives_of_the_same_task(demo_mined, demo_tables):
    from umarvel_cli.artifacts import read_table

    mined = {r["qid"]: r for r in read_table(demo_mined[1], "mined", ["qid", "top_neg_ids"]).to_pylist()}
    data = RerankSet(demo_tables, demo_mined[1], "random", 42, random_share=1.0)
    task_positives: dict[int, set[str]] = {}
    for row, group in zip(data.base.rows, data.base.groups, strict=True):
        task_positives.setdefault(int(group), set()).update(row["pos"])
    from_pool = 0
    for i in range(len(data)):
        ex = data.example(i, 0)
        own = set(data.positives[ex.query.id])
        assert ex.neg_keys[0] not in own
        assert ex.neg_keys[0] in task_positives[int(data.groups[i])] | set(mined[ex.query.id]["top_neg_ids"])
        from_pool += ex.neg_keys[0] in data.random_pool[ex.query.id]
    assert from_pool >= 0.9 * len(data)  # all but the tasks whose only positives are the query's own


def test_loss_falls_on_a_repeated_batch_and_p_yes_of_the_positive_rises(base, demo_mined, demo_tables):
    torch.manual_seed(0)
    cfg = resolve_config("rerank", "demo", None, [])
    objective = RerankAnswerCE.from_config(cfg)
    data = RerankSet(demo_tables, demo_mined[1], cfg.instruction, cfg.seed)
    examples = [data.example(i, 0) for i in range(3)]
    rr = Reranker.from_pretrained(base, device="cpu")
    batch = objective.batch(examples, torch.device("cpu"))
    assert len(batch.pairs) == 6 and batch.targets["positive"].tolist() == [True, False] * 3
    pair = batch.pairs[0]
    p_before = float(rr.score([pair])[0])
    opt = torch.optim.AdamW(rr.model.parameters(), lr=1e-3)
    rr.model.train()
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = objective.model_loss(rr, batch).loss
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    rr.model.eval()
    assert losses[-1] < losses[0] * 0.5, losses
    assert float(rr.score([pair])[0]) > p_before


def test_killed_rerank_stage_resumes_to_the_same_model(trained, base, demo_mined, demo_tables, tmp_path):
    (_, mined), (_, ref) = demo_mined, trained

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(_req(base, tmp_path / "b", demo_tables, mined), on_step=crash)
    assert read_manifest(tmp_path / "b") is None
    again = run_stage(_req(base, tmp_path / "b", demo_tables, mined))
    assert again.status == "resume" and again.extra["resumed_from_step"] == 2
    a = load_file(ref / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    assert run_stage(_req(base, tmp_path / "b", demo_tables, mined)).status == "up_to_date"
