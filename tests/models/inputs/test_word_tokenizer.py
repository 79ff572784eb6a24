"""The tiny models' word tokenizer: byte-level BPE built in code, common words one token each."""

from __future__ import annotations

from umarvel_cli.models.inputs.tokenizer import build_byte_tokenizer, build_word_tokenizer


def test_common_words_are_single_tokens_and_any_text_round_trips():
    tok = build_word_tokenizer(("<emb>",))
    assert tok.tokenize("A small red star against a night sky.") == [
        "A",
        "Ġsmall",
        "Ġred",
        "Ġstar",
        "Ġagainst",
        "Ġa",
        "Ġnight",
        "Ġsky",
        ".",
    ]
    for text in ("Zürich ☃ 東京 crimson polka-dot", "x" * 50, "<emb> marks"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert tok.convert_tokens_to_ids("<emb>") == tok("<emb>", add_special_tokens=False)["input_ids"][0]
    assert len(tok) > len(build_byte_tokenizer()) + 500  # merges on top of the byte alphabet


def test_word_tokenizer_is_deterministic():
    a, b = build_word_tokenizer(), build_word_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
