"""Tokenizers: the tiny byte-level one built offline in code, and the added tokens every model needs.

The tiny tokenizer is byte-level (every UTF-8 byte one token, no merges) with Qwen's special tokens,
so it is deterministic, needs no download, and any text round-trips.
"""

from __future__ import annotations

from typing import Any

QWEN_SPECIALS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
PAD_TOKEN = "<|endoftext|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"

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


def build_byte_tokenizer(extra_tokens: tuple[str, ...] = ()) -> Any:
    """A Qwen2Tokenizer over the 256 byte symbols plus Qwen's special tokens and `extra_tokens`."""
    import transformers
    from tokenizers import pre_tokenizers

    vocab = {PAD_TOKEN: 0}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = transformers.Qwen2Tokenizer(vocab=vocab, merges=[])
    tok.add_special_tokens({"additional_special_tokens": [*QWEN_SPECIALS, *extra_tokens]})
    tok.pad_token = PAD_TOKEN
    tok.eos_token = "<|im_end|>"
    tok.padding_side = "right"
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def ensure_tokens(tokenizer: Any, tokens: list[str]) -> int:
    """Add marker tokens a checkpoint's tokenizer lacks (as special, never split); returns how many."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN
    return len(missing)
