"""The embedder: a Qwen-VL backbone + the one formatter + pooling + a learnable temperature.

`forward(batch)` is what training differentiates; `encode(records)` is inference (bucketed by
length and image size, order restored, OOM-safe). Both go through the same attention, position
and pooling code, configured only by the folder's `umarvel.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from umarvel_cli.data.records import Record, Role
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.attention import language_model, set_attention, speed_up_vision_attention
from umarvel_cli.models.batching import collate_ahead, plan_batches, run_batches, to_device
from umarvel_cli.models.checks import check_model_folder, check_weights_folder
from umarvel_cli.models.folder import write_model_folder
from umarvel_cli.models.inputs.collator import MODEL_INPUT_KEYS, Collator, collator_for
from umarvel_cli.models.inputs.encoded import EncodedInput
from umarvel_cli.models.inputs.formatter import InputFormatter
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.inputs.tokenizer import ensure_tokens
from umarvel_cli.models.packing import is_packed, pack_batch, packed_model_inputs, unpack_hidden
from umarvel_cli.models.patch_embed import (
    accepts_raw_patches,
    as_raw_patches,
    linearize_patch_embed,
    set_raw_normalization,
)
from umarvel_cli.models.pooling import pool
from umarvel_cli.models.registry import (
    Family,
    attention_implementation,
    default_dtype,
    detect_family,
    get_family,
    quiet_transformers,
)
from umarvel_cli.models.umarvel_config import UmarvelConfig

# CPU batches embedded at once (each holds its activations: bounded for large models)
MAX_CPU_WORKERS = 4
# images `encode` decodes while it formats a chunk, with several CPU workers (bounds the memory held)
DECODE_AHEAD = 64


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Embedder(nn.Module):
    """Qwen-VL retriever. Attributes: `config` (UmarvelConfig), `tokenizer`, `backbone`, `log_temperature`."""

    def __init__(
        self, backbone: nn.Module, tokenizer: Any, image_processor: Any, config: UmarvelConfig
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.config = config
        self.family: Family = get_family(config.family)
        self.log_temperature = nn.Parameter(
            torch.tensor(float(config.log_temperature), dtype=torch.float32), requires_grad=False
        )
        self.formatter = InputFormatter(tokenizer, image_processor, config)
        self.collator = self._make_collator(raw_pixels=False)
        # inference batches: images as raw uint8 patches, normalisation folded into the patch embedding
        self.raw_collator = self._make_collator(raw_pixels=True)
        set_attention(self.backbone, config.attention)
        speed_up_vision_attention(self.backbone)  # same numbers, less CPU time (inference only)
        if linearize_patch_embed(self.backbone):
            set_raw_normalization(self.backbone, *self.formatter.patcher.normalization)

    def _make_collator(self, raw_pixels: bool) -> Collator:
        mrope = self.config.position_ids == "mrope"
        return collator_for(
            self.tokenizer, self.formatter, self.family, self.backbone.config, mrope, raw_pixels
        )

    # -- loading and saving -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        **overrides: Any,
    ) -> Embedder:
        """Load a model folder (umarvel.json optional: a plain Qwen-VL checkpoint gets the defaults).

        `overrides` replace umarvel.json fields for this instance (e.g. `attention="causal"`).
        """
        import transformers

        quiet_transformers()
        path = Path(path)
        if not path.is_dir():
            raise UmarvelError("model folder not found", file=path, expected="a folder with config.json")
        check_model_folder(path, weights=False)
        if UmarvelConfig.exists(path):
            config = UmarvelConfig.load(path)
        else:
            config = UmarvelConfig(family=detect_family(path).name)
        if overrides:
            config = UmarvelConfig(**{**config.to_dict(), **overrides})
        if config.extra.get("kind") == "reranker":
            raise UmarvelError(
                "this is a reranker, not an embedding model", file=path, expected="an embedding model folder"
            )
        family = get_family(config.family)
        check_weights_folder(path, "model")
        dev = resolve_device(device)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        dtype = dtype or default_dtype(dev)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "right"
        ensure_tokens(tokenizer, [config.instruction_start, config.instruction_end, config.emb_token])
        backbone, loading = family.model_cls().from_pretrained(
            path,
            dtype=dtype,
            attn_implementation=attention_implementation(dev),
            output_loading_info=True,
            use_safetensors=True,
        )
        missing = list(loading.get("missing_keys") or [])
        if missing:
            raise UmarvelError(
                f"{len(missing)} weights of {family.model_class} are not in the checkpoint (e.g. {missing[0]})",
                file=path,
                expected=f"a {family.name} checkpoint",
            )
        if len(tokenizer) > backbone.get_input_embeddings().weight.shape[0]:
            backbone.resize_token_embeddings(len(tokenizer))
        backbone.to(dev)
        image_processor = build_image_processor(family, config.min_pixels, config.max_pixels)
        embedder = cls(backbone, tokenizer, image_processor, config)
        embedder.to(dev)
        embedder.eval()
        return embedder

    def set_max_pixels(self, max_pixels: int) -> None:
        """Resize images to at most `max_pixels` from now on (the distill stage trains at 224 x 224):
        the config, image processor, formatter and collators all follow; weights are untouched."""
        self.config = UmarvelConfig(**{**self.config.to_dict(), "max_pixels": int(max_pixels)})
        self.image_processor = build_image_processor(
            self.family, self.config.min_pixels, self.config.max_pixels
        )
        self.formatter = InputFormatter(self.tokenizer, self.image_processor, self.config)
        self.collator = self._make_collator(raw_pixels=False)
        self.raw_collator = self._make_collator(raw_pixels=True)

    def sync_config(self) -> UmarvelConfig:
        """Copy the live temperature into the config (what gets saved)."""
        self.config.set_log_temperature(float(self.log_temperature.detach().cpu()))
        return self.config

    def save_pretrained(self, path: str | Path) -> Path:
        """Write a plain model folder: weights, tokenizer, image processor config, umarvel.json."""
        return write_model_folder(
            self.backbone,
            self.tokenizer,
            self.image_processor,
            self.sync_config(),
            path,
            "embedder",
            adapted=hasattr(self.backbone, "peft_config"),
        )

    # -- properties -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.log_temperature.device

    @property
    def dim(self) -> int:
        return int(self.backbone.get_input_embeddings().weight.shape[1])

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    # -- model inputs -----------------------------------------------------------------------------
    def prepare(self, records: Sequence[Record], role: Role = "query") -> dict[str, torch.Tensor]:
        """Format and collate records into one batch (training and tests)."""
        return self.collator(self.formatter.encode_many(list(records), role))

    def _model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        dev = self.device
        inputs: dict[str, Any] = {k: to_device(batch[k], dev) for k in MODEL_INPUT_KEYS if k in batch}
        if "pixel_values" in inputs and accepts_raw_patches(self.backbone):
            inputs["pixel_values"] = as_raw_patches(inputs["pixel_values"])  # converted in cache-sized blocks
        if self.config.position_ids == "mrope" and "position_ids" in batch:
            # computed by the collator on the CPU (equal to transformers' get_rope_index, no GPU syncs)
            inputs["position_ids"] = to_device(batch["position_ids"], dev)
        elif self.config.position_ids == "sequential":
            # 1-D positions over the sequence (what the released checkpoints were trained with).
            mask = inputs["attention_mask"]
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if bool(batch["attention_mask"].all()):  # asked of the host copy: no GPU sync per batch
            # No padding: no mask to build; attention stays bidirectional through is_causal=False.
            inputs["attention_mask"] = None
        elif (
            self.config.attention != "causal"
            and "position_ids" in inputs
            and language_model(self.backbone).config._attn_implementation == "sdpa"
        ):
            # Bidirectional with padding: every query sees exactly the batch row's real keys, so a
            # [B, 1, 1, L] key mask that SDPA broadcasts equals transformers' [B, 1, L, L] one
            # (a 4-D mask is used as given) without building L x L entries per row. Only with
            # positions given: transformers derives missing M-RoPE positions from a 2-D mask.
            inputs["attention_mask"] = inputs["attention_mask"].bool()[:, None, None, :]
        inputs["use_cache"] = False
        return inputs

    def _packed_model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        inputs = packed_model_inputs(
            batch,
            self.device,
            language_model(self.backbone).config._attn_implementation,
            causal=self.config.attention == "causal",
            sequential_positions=self.config.position_ids == "sequential",
            to_device=to_device,
        )
        if "pixel_values" in inputs and accepts_raw_patches(self.backbone):
            inputs["pixel_values"] = as_raw_patches(inputs["pixel_values"])
        return inputs

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last-layer hidden states [B, L, H]; a packed batch (`models/packing.py`) runs as one
        row and comes back in the padded layout."""
        if is_packed(batch):
            hidden = self.backbone(**self._packed_model_inputs(batch)).last_hidden_state
            return unpack_hidden(hidden, batch)
        return self.backbone(**self._model_inputs(batch)).last_hidden_state

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L2-normalised embeddings [B, d] (fp32), differentiable; `batch` padded or `pack_batch(batch)`."""
        hidden = self.hidden_states(batch)
        dev = hidden.device
        return pool(
            hidden,
            to_device(batch["attention_mask"], dev),
            to_device(batch["pool_mask"], dev),
            self.config.pooling,
        )

    # -- inference --------------------------------------------------------------------------------
    def encode(
        self,
        records: Iterable[Record],
        batch_size: int = 32,
        role: Role = "query",
        chunk_size: int = 1024,
        workers: int | None = None,
        pack: bool = False,
        max_tokens: int | None = None,
    ) -> np.ndarray:
        """Embeddings [N, d] float32 in input order. Records are formatted once, in chunks.

        `pack`: each batch runs as one packed row (`models/packing.py`; same vectors, no padding
        compute), batches sized by `max_tokens` real tokens (see `encode_inputs`).

        Formatting reads only image headers; images are decoded and resized per batch by the
        collator, beside the model (see `encode_inputs`). With several CPU workers, the first
        DECODE_AHEAD images of a chunk are decoded in a background thread while it is formatted.
        """
        records = list(records)
        out = np.zeros((len(records), self.dim), dtype=np.float32)
        workers = self._workers(workers)
        # several CPU workers: the cores the formatting leaves idle decode the first images meanwhile
        ahead = DECODE_AHEAD if workers > 1 and self.device.type == "cpu" else 0
        for start in range(0, len(records), chunk_size):
            chunk = records[start : start + chunk_size]
            encoded = self.formatter.encode_many(chunk, role, defer_decode=True, decode_ahead=ahead)
            out[start : start + len(encoded)] = self.encode_inputs(
                encoded, batch_size, max_tokens=max_tokens, workers=workers, pack=pack
            )
        return out

    def _workers(self, workers: int | None) -> int:
        """CPU batches run at once: given, or one per torch thread (at most MAX_CPU_WORKERS); 1 on GPU."""
        if workers is not None:
            return workers
        return 1 if self.device.type != "cpu" else min(torch.get_num_threads(), MAX_CPU_WORKERS)

    def encode_inputs(
        self,
        items: Sequence[EncodedInput],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
        max_tokens: int | None = None,
        overlap: bool | None = None,
        workers: int | None = None,
        pack: bool = False,
    ) -> np.ndarray:
        """Embed formatted items in length-bucketed batches under inference_mode, in input order.

        On CPU, `workers` batches run at once (default: one per torch thread, at most
        MAX_CPU_WORKERS), each with torch threads // workers intra-op threads: a small model's ops
        are too small to keep several cores busy alone, and one batch's image decoding and
        collation then runs beside another batch's model compute.
        On GPU (or with one worker) batches run one by one; while the model runs the current batch,
        the next ones are collated by a pool of background threads (`overlap`; default: on GPU only,
        with `collate_ahead()` threads: one collating thread could not keep a 2B model on an H200
        busy, docs/benchmarks.md), and on CUDA out-of-memory the failing batch is split in two and
        retried.
        `pack`: every batch is one packed row of at most `max_tokens` real tokens (default
        batch_size * DEFAULT_TOKENS_PER_ITEM; a longer item goes alone), packed while collating.
        """
        batches = plan_batches(items, max(1, batch_size), max_tokens, packed=pack)
        padded = self.raw_collator if accepts_raw_patches(self.backbone) else self.collator
        collator = (lambda batch_items: pack_batch(padded(batch_items))) if pack else padded
        workers = self._workers(workers)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        try:
            if workers > 1 and self.device.type == "cpu":
                return run_batches(items, batches, collator, self._run_batch, out, workers, on_batch=on_batch)
            overlap = self.device.type == "cuda" if overlap is None else overlap
            ahead = collate_ahead() if overlap else 0
            return run_batches(items, batches, collator, self._run_batch, out, ahead=ahead, on_batch=on_batch)
        finally:
            self.train(was_training)

    def _run_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """fp32 vectors of one batch, left on the model's device (queued, not waited for, on a GPU)."""
        with torch.inference_mode():  # thread-local: entered in the thread that runs the batch
            return self.forward(batch).float()

    def logits(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Cosine similarities divided by the temperature (the logits of InfoNCE)."""
        return q @ c.T / self.temperature

    # -- the Python API (strings, PIL images, paths, dicts or Records; see models/items.py) ------
    def encode_queries(
        self, items: Iterable[Any], instruction: str | None = None, batch_size: int = 32
    ) -> np.ndarray:
        """Query embeddings [N, d] (L2-normalised float32); `instruction` prefixes every query."""
        from umarvel_cli.models.items import to_records

        return self.encode(to_records(items, instruction), batch_size=batch_size, role="query")

    def encode_candidates(self, items: Iterable[Any], batch_size: int = 32) -> np.ndarray:
        """Candidate embeddings [N, d] (L2-normalised float32)."""
        from umarvel_cli.models.items import to_records

        return self.encode(to_records(items), batch_size=batch_size, role="candidate")

    @staticmethod
    def similarity(q: np.ndarray | torch.Tensor, c: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Cosine similarities [len(q), len(c)], as sentence-transformers returns them (the learnt
        temperature is not applied; `logits` applies it)."""
        q_t = torch.nn.functional.normalize(
            torch.as_tensor(q, dtype=torch.float32).reshape(-1, q.shape[-1]), dim=-1
        )
        c_t = torch.nn.functional.normalize(
            torch.as_tensor(c, dtype=torch.float32).reshape(-1, c.shape[-1]), dim=-1
        )
        return q_t @ c_t.T
