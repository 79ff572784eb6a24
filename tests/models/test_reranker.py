"""The reranker: a tiny generative folder, P(Yes) from one forward pass equal to the full LM head's
softmax at the answer position, batched in any order; one-line refusals of wrong folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.models.tiny_models import TINY_BACKBONES, random_image
from umarvel_cli.app import app
from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.embedder import Embedder
from umarvel_cli.models.reranker import RELEASED_PROMPT, Reranker, answer_token_ids
from umarvel_cli.models.tiny import init_tiny_model

QUERIES = [
    Record("q1", "a red bus on a street", None, "find a picture"),
    Record("q2", "", random_image(1, 50, 40), "find a caption", modality="image"),
]
CANDIDATES = [
    Record("c1", "a bus in the city"),
    Record("c2", "", random_image(2, 70, 30), modality="image"),
    Record("c3", "a long text " * 12, random_image(3, 30, 60)),
]


@pytest.fixture(scope="module")
def reranker_dir(tmp_path_factory):
    return init_tiny_model("tiny-qwen2-vl", tmp_path_factory.mktemp("rr") / "m", seed=1, kind="reranker")


def test_init_model_reranker_writes_a_generative_folder(tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(
        app, ["init-model", "--backbone", "tiny-qwen2.5-vl", "--kind", "reranker", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert json.loads((out / "umarvel.json").read_text())["extra"] == {"kind": "reranker"}
    rr = Reranker.from_pretrained(out, device="cpu")
    assert rr.model.get_output_embeddings().weight.shape[0] == len(rr.tokenizer)
    bad = CliRunner().invoke(
        app, ["init-model", "--backbone", "tiny-qwen2-vl", "--kind", "x", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "'x' is not one of 'embedding', 'reranker'" in bad.output


def _reference(rr: Reranker, query: Record, cand: Record) -> float:
    """P(Yes) from the full model's logits over the whole vocabulary, one pair at a time."""
    (item,) = rr.encode_pairs([(query, cand)])
    batch = rr.collator([item])
    with torch.no_grad():
        logits = rr.model(**rr._inputs(batch)).logits[0, -1]
    return float(torch.softmax(logits[[rr.yes_id, rr.no_id]], dim=-1)[0])


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_p_yes_equals_the_full_forward_at_the_answer_position_in_any_batch(backbone, tmp_path):
    rr = Reranker.from_pretrained(init_tiny_model(backbone, tmp_path / "m", kind="reranker"), device="cpu")
    pairs = [(q, c) for q in QUERIES for c in CANDIDATES]
    expected = np.array([_reference(rr, q, c) for q, c in pairs], dtype=np.float32)
    assert len(set(np.round(expected, 6))) > 1  # the pairs really differ
    for batch_size in (1, 4, 16):  # bucketed batches with right padding give the same numbers, in order
        np.testing.assert_allclose(rr.score(pairs, batch_size=batch_size), expected, rtol=1e-4, atol=1e-5)
    assert ((expected > 0) & (expected < 1)).all()
    lazy = rr.encode_pairs(pairs, defer_decode=True)  # images decoded per batch by the collator
    assert any(im.lazy is not None and im.resized is None for it in lazy for im in it.images)
    np.testing.assert_allclose(rr.score_inputs(lazy, batch_size=4), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_video_candidates_score_as_the_model_computes_them(backbone, tmp_path):
    """A (caption, video) pair: P(Yes) with the collator's video positions equals the model's own
    forward, which derives M-RoPE from mm_token_type_ids, video_grid_thw (and second_per_grid_ts)."""
    from tests.models.inputs.test_video import write_video

    rr = Reranker.from_pretrained(init_tiny_model(backbone, tmp_path / "m", kind="reranker"), device="cpu")
    clip = write_video(tmp_path / "clip.mp4", n=30)
    pairs = [(QUERIES[0], Record("v", image=str(clip), modality="video")), (QUERIES[0], CANDIDATES[0])]
    items = rr.encode_pairs(pairs)
    batch = rr.collator(items)
    assert batch["video_grid_thw"].tolist() == [list(items[0].videos[0].grid)]
    inputs = rr._inputs(batch)
    del inputs["position_ids"]
    with torch.no_grad():
        logits = rr.model(**inputs).logits
    last = batch["attention_mask"].sum(1) - 1
    ref = torch.softmax(logits[torch.arange(2), last][:, [rr.yes_id, rr.no_id]], dim=-1)[:, 0].numpy()
    np.testing.assert_allclose(rr.score(pairs, batch_size=2), ref, rtol=1e-4, atol=1e-5)


def test_prompt_is_one_user_turn_with_the_generation_prompt(reranker_dir):
    rr = Reranker.from_pretrained(reranker_dir, device="cpu", prompt="released")
    (item,) = rr.encode_pairs([(QUERIES[0], CANDIDATES[0])])
    text = rr.tokenizer.decode(item.input_ids)
    assert RELEASED_PROMPT in text and " " * 24 + "meets" in text and "responed" in text
    assert text.endswith("<|im_start|>assistant\n") and text.count("<|im_start|>user") == 1
    assert text.index("Query:") < text.index("A red bus") < text.index("Candidate:") < text.index("A bus in")
    (train,) = rr.encode_pairs([(QUERIES[0], CANDIDATES[0])], answer="Yes")
    assert rr.tokenizer.decode(train.input_ids).endswith("<|im_start|>assistant\nYes<|im_end|>\n")


def test_wrong_folders_are_refused_in_one_line(tmp_path, reranker_dir):
    embedding = init_tiny_model("tiny-qwen2-vl", tmp_path / "emb")
    with pytest.raises(UmarvelError, match="this is an embedding model, not a reranker"):
        Reranker.from_pretrained(embedding, device="cpu")
    with pytest.raises(UmarvelError, match="this is a reranker, not an embedding model"):
        Embedder.from_pretrained(reranker_dir, device="cpu")

    class Splits:  # a tokenizer that spells "Yes" in two tokens
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [1, 2] if text == "Yes" else [3]}

    with pytest.raises(UmarvelError, match="encodes 'Yes' as 2 tokens"):
        answer_token_ids(Splits(), tmp_path)


def test_answer_loss_is_cross_entropy_on_the_answer_token_only(reranker_dir):
    rr = Reranker.from_pretrained(reranker_dir, device="cpu")
    pairs = [(QUERIES[0], CANDIDATES[0]), (QUERIES[1], CANDIDATES[2]), (QUERIES[0], CANDIDATES[1])]
    batch = rr.collator(rr.encode_pairs(pairs))
    positive = torch.tensor([True, False, True])
    loss = rr.answer_loss(batch, positive)
    expected = []
    for (q, c), pos in zip(pairs, positive.tolist(), strict=True):
        (item,) = rr.encode_pairs([(q, c)])
        with torch.no_grad():
            logits = rr.model(**rr._inputs(rr.collator([item]))).logits[0, -1]
        expected.append(-torch.log_softmax(logits, -1)[rr.yes_id if pos else rr.no_id])
    assert float(loss.detach()) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-4)
    rr.model.zero_grad()
    loss.backward()
    head = rr.model.get_output_embeddings().weight.grad
    assert head is not None and head[rr.yes_id].abs().sum() > 0
    untouched = [i for i in range(head.shape[0]) if i not in (rr.yes_id, rr.no_id)][:5]
    assert head[untouched].abs().sum() > 0  # the full-vocabulary softmax, not a 2-way one


def test_a_plain_instruct_folder_loads_as_a_causal_reranker_with_256_text_tokens(tmp_path):
    folder = init_tiny_model("tiny-qwen2-vl", tmp_path / "plain", kind="reranker")
    (folder / "umarvel.json").unlink()  # as a downloaded Qwen2-VL-Instruct folder: config.json only
    rr = Reranker.from_pretrained(folder, device="cpu")
    assert rr.config.attention == "causal" and rr.config.text_token_budget == 256
    assert rr.score([(QUERIES[0], CANDIDATES[0])]).shape == (1,)


def test_a_finished_rerank_train_output_stands_for_its_model(tmp_path, reranker_dir):
    """As for every `--model`: a train output folder names its `model/` (models/folder.py)."""
    import shutil

    from umarvel_cli.artifacts import Manifest, write_manifest

    out = tmp_path / "rr"
    shutil.copytree(reranker_dir, out / "model")
    with pytest.raises(UmarvelError, match="not finished"):
        Reranker.from_pretrained(out, device="cpu")  # no manifest yet: an interrupted run
    write_manifest(out, Manifest(stage="train-rerank", params={}))
    pair = (Record(id="q", text="a red circle"), Record(id="c", text="a red circle"))
    direct = Reranker.from_pretrained(reranker_dir, device="cpu")
    via_output = Reranker.from_pretrained(out, device="cpu")
    items = [direct.encode_pairs([pair])[0]]
    assert np.array_equal(direct.score_inputs(items, 1), via_output.score_inputs(items, 1))


def test_mean_readout_reads_yes_and_no_from_the_mean_of_every_tokens_state(tmp_path):
    """`init-model --kind reranker --readout mean`: the LM head applied to each pair's mean last
    hidden state (one item at a time as reference), in any batch; the loss reads the same state."""
    folder = init_tiny_model("tiny-qwen2-vl", tmp_path / "m", seed=3, kind="reranker", readout="mean")
    rr = Reranker.from_pretrained(folder, device="cpu")
    assert rr.readout == "mean"
    pairs = [(q, c) for q in QUERIES for c in CANDIDATES]
    expected, logits_of = [], []
    for q, c in pairs:
        (item,) = rr.encode_pairs([(q, c)])
        with torch.no_grad():
            hidden = rr.model.model(**rr._inputs(rr.collator([item]))).last_hidden_state[0]
            logits = rr.model.get_output_embeddings()(hidden.mean(dim=0))
        logits_of.append(logits)
        expected.append(float(torch.softmax(logits[[rr.yes_id, rr.no_id]], -1)[0]))
    for batch_size in (1, 4):
        np.testing.assert_allclose(rr.score(pairs, batch_size=batch_size), expected, rtol=1e-4, atol=1e-5)
    answer = Reranker.from_pretrained(
        init_tiny_model("tiny-qwen2-vl", tmp_path / "a", seed=3, kind="reranker")
    )
    assert not np.allclose(answer.score(pairs), expected, atol=1e-4)  # the same weights, another readout
    positive = torch.tensor([i % 2 == 0 for i in range(len(pairs))])
    loss = rr.answer_loss(rr.collator(rr.encode_pairs(pairs)), positive)
    targets = [rr.yes_id if p else rr.no_id for p in positive.tolist()]
    reference = torch.stack([-torch.log_softmax(lg, -1)[t] for lg, t in zip(logits_of, targets, strict=True)])
    assert float(loss.detach()) == pytest.approx(float(reference.mean()), rel=1e-4)
