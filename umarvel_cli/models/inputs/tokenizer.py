"""Tokenizers built offline in code for tiny models, and the added tokens every model needs.

Both are byte-level with Qwen's special tokens, so they are deterministic, need no download, and any
text round-trips. `build_byte_tokenizer` has no merges (every UTF-8 byte one token);
`build_word_tokenizer` adds BPE merges learned in code from a small list of common English words,
so frequent words are one token each as in a real Qwen vocabulary. A tiny model learns far faster
from word tokens than from bytes (2 layers barely assemble words from letters within a CPU budget).
"""

from __future__ import annotations

import json
from typing import Any

from umarvel_cli.models.registry import QWEN_TOKENS, ChatTokens

QWEN_SPECIALS = QWEN_TOKENS.specials
PAD_TOKEN = QWEN_TOKENS.pad

# Qwen2-VL's chat template (default system prompt; image/video placeholders). Written into the tiny
# tokenizer so a tiny folder renders exactly like a real Qwen2-VL checkpoint.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# Common English words (function words, everyday nouns, adjectives, colours, shapes, places in a
# picture, verbs of captions and questions). The word tokenizer learns its merges from them.
_ENGLISH_TEXT = """
a an the this that these those there here it its is are was were be been has have had do does did
of in on at to from with without by for about into onto over under near far above below between
and or but not no yes as than then so very more most less one two three some many each every other
same another what which who whom whose when where why how can could will would shall should may
i you he she we they me him her us them my your his our their someone something people person
picture photo image drawing scene shows showing shown show seen see look looks like looking appears
make made turn change changed replace put move shift give paint painted draw drew keep kept set
colour color colours pattern patterns surface shape shapes size sizes position background instead
red green blue yellow purple orange white black grey gray pink brown gold golden silver dark light
bright pale plain solid striped stripes dotted dots spotted spots checkered check squares checks
small little tiny medium large big huge wide narrow tall short long round flat sharp smooth rough
circle square triangle star cross diamond ring hexagon line lines edge corner side middle centre
center left right top bottom front back upper lower inside outside around against sky night sand
day morning evening summer winter city town village street road square hall market harbour park
house home room table chair door window wall floor garden tree flower water sea river lake hill
museum festival parade ceremony match crowd crowds officials visitors workers students fans team
year years first last new old young early late recorded known called named name famous history
emblem emblems flag sign symbol badge logo coat skirt dress top jacket shirt scarf bag shoe hat
fit petite regular oversized loose tight pattern fabric style fashion wear wearing worn clothes
question answer find found show tell give come comes came go goes went take took hold held carry
news report story event events opening final during before after while until since once again
"""
ENGLISH_WORDS: tuple[str, ...] = tuple(_ENGLISH_TEXT.split())
WORD_VOCAB_SIZE = 1536  # bytes + merges; enough for every word above to become one token


def _byte_vocab() -> dict[str, int]:
    from tokenizers import pre_tokenizers

    vocab = {PAD_TOKEN: 0}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    return vocab


def _finish(tok: Any, extra_tokens: tuple[str, ...]) -> Any:
    tok.add_special_tokens({"additional_special_tokens": [*QWEN_SPECIALS, *extra_tokens]})
    tok.pad_token = PAD_TOKEN
    tok.eos_token = QWEN_TOKENS.turn_end
    tok.padding_side = "right"
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def build_byte_tokenizer(extra_tokens: tuple[str, ...] = ()) -> Any:
    """A Qwen2Tokenizer over the 256 byte symbols plus Qwen's special tokens and `extra_tokens`."""
    import transformers

    return _finish(transformers.Qwen2Tokenizer(vocab=_byte_vocab(), merges=[]), extra_tokens)


def word_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary and merges learned from `ENGLISH_WORDS` (deterministic)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = trainers.BpeTrainer(
        vocab_size=WORD_VOCAB_SIZE, initial_alphabet=alphabet, special_tokens=[PAD_TOKEN], show_progress=False
    )
    words = sorted(set(ENGLISH_WORDS))
    # each word as it appears mid-sentence (" red") and first in one ("Red")
    bpe.train_from_iterator([" " + " ".join(words), *(w.capitalize() for w in words)], trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return dict(model["vocab"]), merges  # type: ignore[return-value]


def build_word_tokenizer(extra_tokens: tuple[str, ...] = ()) -> Any:
    """A byte-level BPE Qwen2Tokenizer whose merges make common English words single tokens."""
    import transformers

    vocab, merges = word_merges()
    return _finish(transformers.Qwen2Tokenizer(vocab=vocab, merges=merges), extra_tokens)


def ensure_tokens(tokenizer: Any, tokens: list[str]) -> int:
    """Add marker tokens a checkpoint's tokenizer lacks (as special, never split); returns how many."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN
    return len(missing)


def vision_token_ids(tokenizer: Any, tokens: ChatTokens = QWEN_TOKENS) -> dict[str, int]:
    """The Qwen-VL config fields naming the tokenizer's vision tokens (image/video pads, markers)."""
    fields = {
        "image_token_id": tokens.image_pad,
        "video_token_id": tokens.video_pad,
        "vision_start_token_id": tokens.vision_start,
        "vision_end_token_id": tokens.vision_end,
    }
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in fields.items()}
