"""The pointwise reranker: a generative Qwen-VL (`...ForConditionalGeneration`) asked "Yes" or "No".

A (query, candidate) pair is ONE prompt from the one input pipeline (`InputFormatter.pair_prompts`:
query parts, then candidate parts, in one user turn, ended by the generation prompt). Its score is
P(Yes) = softmax([logit_Yes, logit_No])[0] at the answer position, read from one forward pass of
the backbone and two rows of the LM head (the released code called `generate(max_new_tokens=128)`
to read that one logit: B18). Pairs run in length-bucketed batches through `models.batching`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from umarvel_cli.data.records import Record
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.attention import set_attention
from umarvel_cli.models.batching import collate_ahead, plan_batches, run_batches, to_device
from umarvel_cli.models.folder import resolve_model_dir, write_model_folder
from umarvel_cli.models.inputs.collator import MODEL_INPUT_KEYS, collator_for
from umarvel_cli.models.inputs.encoded import EncodedInput
from umarvel_cli.models.inputs.formatter import InputFormatter
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.registry import (
    attention_implementation,
    default_dtype,
    detect_family,
    get_family,
    quiet_transformers,
)
from umarvel_cli.models.umarvel_config import UmarvelConfig

ANSWERS = ("Yes", "No")
KIND_KEY = "kind"
RERANKER_KIND = "reranker"
# The clean default instruction before each pair.
PROMPT = (
    "I will provide you with a query and a candidate. Please evaluate whether the candidate meets the "
    "requirements of the query. If it does, respond with 'Yes'; if it doesn't, respond with 'No'."
)
# The released reranker's instruction verbatim (24 spaces and "responed": spec 6.1), for its weights.
RELEASED_PROMPT = (
    "I will provide you with a query and a candidate. Please evaluate whether the candidate"
    + " " * 24
    + "meets the requirements of the query. If it does, respond with 'Yes'; if it doesn't, responed with 'No'."
)
PROMPTS = {"clean": PROMPT, "released": RELEASED_PROMPT}
RERANK_TEXT_TOKENS = 256


def model_kind(folder: Path) -> str:
    """ "reranker" or "embedding": umarvel.json's `extra.kind`, else config.json's architecture."""
    if UmarvelConfig.exists(folder):
        kind = UmarvelConfig.load(folder).extra.get(KIND_KEY)
        if kind:
            return str(kind)
    try:
        archs = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (FileNotFoundError, json.JSONDecodeError):
        return "embedding"
    return RERANKER_KIND if any(a.endswith("ForConditionalGeneration") for a in archs) else "embedding"


def answer_token_ids(tokenizer: Any, folder: Path | None = None) -> tuple[int, int]:
    """The ids of "Yes" and "No"; each must be ONE token, else there is no single logit to read."""
    ids = []
    for word in ANSWERS:
        encoded = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise UmarvelError(
                f"the tokenizer encodes {word!r} as {len(encoded)} tokens",
                file=folder,
                expected='a tokenizer where "Yes" and "No" are single tokens',
            )
        ids.append(int(encoded[0]))
    return ids[0], ids[1]


def check_reranker_folder(path: Path) -> tuple[UmarvelConfig, Any]:
    """A reranker folder's settings and tokenizer, refusing an embedding model or a tokenizer without
    single-token answers; cheap (no weights), so stages call it before they write anything."""
    import transformers

    quiet_transformers()
    path = resolve_model_dir(path)  # a finished `rerank train` output names its model/, as everywhere
    if model_kind(path) != RERANKER_KIND:
        raise UmarvelError(
            "this is an embedding model, not a reranker",
            file=path,
            expected="a generative (...ForConditionalGeneration) folder, e.g. `init-model --kind reranker`",
        )
    config = UmarvelConfig.load(path) if UmarvelConfig.exists(path) else None
    if config is None:
        # a plain Instruct folder: causal, and each side's text cut at 256 tokens as released (spec 6.1)
        config = UmarvelConfig(
            family=detect_family(path).name, attention="causal", text_token_budget=RERANK_TEXT_TOKENS
        )
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    answer_token_ids(tokenizer, path)
    return config, tokenizer


class Reranker(nn.Module):
    """Generative Qwen-VL scoring (query, candidate) pairs by P(Yes)."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        image_processor: Any,
        config: UmarvelConfig,
        prompt: str = "clean",
    ) -> None:
        super().__init__()
        if prompt not in PROMPTS:
            raise UmarvelError(
                f"unknown reranker prompt {prompt!r}", field="prompt", expected=" | ".join(PROMPTS)
            )
        self.backbone = model  # the generative network (what LoRA wraps while training)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.config = config
        self.family = get_family(config.family)
        self.prompt = prompt
        self.preamble = PROMPTS[prompt]
        self.formatter = InputFormatter(tokenizer, image_processor, config)
        self.yes_id, self.no_id = answer_token_ids(tokenizer)
        self.collator = collator_for(tokenizer, self.formatter, self.family, model.config, mrope=True)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        prompt: str | None = None,
    ) -> Reranker:
        """Load a local generative model folder (or a finished `rerank train` output); refuses an
        embedding model and a bad tokenizer."""
        path = resolve_model_dir(path)
        config, tokenizer = check_reranker_folder(path)
        family = get_family(config.family)
        dev = (
            torch.device(device)
            if device is not None
            else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model = family.generation_cls().from_pretrained(
            path, dtype=dtype or default_dtype(dev), attn_implementation=attention_implementation(dev)
        )
        set_attention(model, config.attention)  # config.json may carry a retriever's is_causal=False
        model.to(dev).eval()
        image_processor = build_image_processor(family, config.min_pixels, config.max_pixels)
        prompt = prompt or str(config.extra.get("rerank_prompt", "clean"))
        return cls(model, tokenizer, image_processor, config, prompt)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def model(self) -> nn.Module:
        """The `...ForConditionalGeneration` model (with LoRA layers in it while training, never the
        peft wrapper, so `.model` and the LM head are where every caller expects them)."""
        return self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone

    # -- saving (also what `models.lora` calls) ---------------------------------------------------
    def sync_config(self) -> UmarvelConfig:
        """The settings to save: marked a reranker, with the prompt it was trained with."""
        self.config.extra[KIND_KEY] = RERANKER_KIND
        self.config.extra["rerank_prompt"] = self.prompt
        return self.config

    def save_pretrained(self, path: str | Path) -> Path:
        """Write a reranker folder `from_pretrained` loads: weights, tokenizer, image processor, umarvel.json."""
        return write_model_folder(
            self.model,
            self.tokenizer,
            self.image_processor,
            self.sync_config(),
            path,
            "reranker",
            adapted=hasattr(self.backbone, "peft_config"),
        )

    def encode_pairs(
        self, pairs: Sequence[tuple[Record, Record]], answer: str | None = None, defer_decode: bool = False
    ) -> list[EncodedInput]:
        """Pairs formatted by the one pipeline: scoring ends with the generation prompt, training with `answer`.

        `defer_decode` reads only image headers here and leaves decoding to the collator, per batch
        (a chunk of thousands of pairs then holds no pixels).
        """
        if not defer_decode:
            ending = {} if answer is None else {"answer": answer, "generation_prompt": False}
            return self.formatter.encode_pairs(pairs, defer_pixels=True, preamble=self.preamble, **ending)
        f = self.formatter
        prompts = f.pair_prompts(
            pairs, preamble=self.preamble, answer=answer, generation_prompt=answer is None
        )

        def check(i: int) -> None:
            f.validate(pairs[i][0])
            f.validate(pairs[i][1])

        return f.encode_prompts(prompts, defer_decode=True, check=check)

    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        dev = self.device
        inputs: dict[str, Any] = {k: to_device(batch[k], dev) for k in MODEL_INPUT_KEYS if k in batch}
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        if "position_ids" in batch:  # the collator's M-RoPE positions (equal to get_rope_index)
            inputs["position_ids"] = to_device(batch["position_ids"], dev)
        inputs["use_cache"] = False
        return inputs

    def answer_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 2] logits of ("Yes", "No") at each row's last real token (the answer position), differentiable."""
        hidden = self.model.model(**self._inputs(batch)).last_hidden_state
        last = to_device(batch["attention_mask"], hidden.device).sum(dim=1) - 1
        at = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        head = self.model.get_output_embeddings()
        rows = torch.tensor([self.yes_id, self.no_id], device=hidden.device)
        weight = head.weight[rows]
        bias = head.bias[rows] if getattr(head, "bias", None) is not None else None
        return nn.functional.linear(at, weight, bias).float()

    def answer_loss(self, batch: dict[str, torch.Tensor], positive: torch.Tensor) -> torch.Tensor:
        """Training: next-token cross-entropy on the answer token only (target "Yes" where `positive`,
        else "No"), over the whole vocabulary as the released recipe trains; prompts end with the
        generation prompt, so the answer is predicted at each row's last real token. Mean over rows."""
        hidden = self.model.model(**self._inputs(batch)).last_hidden_state
        last = to_device(batch["attention_mask"], hidden.device).sum(dim=1) - 1
        at = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        logits = self.model.get_output_embeddings()(at).float()
        target = torch.where(positive.to(hidden.device).bool(), self.yes_id, self.no_id)
        return nn.functional.cross_entropy(logits, target)

    def _run_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(self.answer_logits(batch), dim=-1)[:, 0]

    def score_inputs(
        self,
        items: Sequence[EncodedInput],
        batch_size: int = 16,
        on_batch: Callable[[int], None] | None = None,
        max_tokens: int | None = None,
    ) -> np.ndarray:
        """P(Yes) [N] float32 of formatted pairs, in input order (bucketed batches, OOM back-off)."""
        batches = plan_batches(items, max(1, batch_size), max_tokens)
        out = np.zeros(len(items), dtype=np.float32)
        ahead = collate_ahead() if self.device.type == "cuda" else 0
        return run_batches(
            items, batches, self.collator, self._run_batch, out, ahead=ahead, on_batch=on_batch
        )

    def score(
        self,
        pairs: Sequence[tuple[Record, Record]],
        batch_size: int = 16,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """P(Yes) of each (query, candidate) pair, in input order."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        return self.score_inputs(self.encode_pairs(pairs), batch_size, on_batch)
