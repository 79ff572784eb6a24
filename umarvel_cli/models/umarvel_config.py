"""`umarvel.json`: the retrieval settings a model folder carries next to its Hugging Face config.

Everything that changes what an embedding means lives here (pooling, attention, positions, the
instruction markers, image resolution, the compression prompt, the learned temperature), so
training, mining, embedding and reranking read ONE source instead of mutating attributes after
loading (the released code's bug B2).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.registry import FAMILIES as FAMILY_TABLE
from umarvel_cli.models.registry import get_family

CONFIG_NAME = "umarvel.json"
FAMILIES = tuple(FAMILY_TABLE)
POOLINGS = ("mean", "last")
POOL_TOKENS = ("all", "content")
ATTENTIONS = ("bidirectional", "causal")
POSITION_MODES = ("mrope", "sequential")
DEFAULT_TEMPERATURE = 0.05


@dataclass
class UmarvelConfig:
    """Retrieval settings of a model folder (see module docstring)."""

    family: str
    pooling: str = "mean"
    # Which tokens mean pooling averages: "all" = the whole rendered chat (the U-MARVEL release),
    # "content" = only the user turn's image and text (system prompt, role and assistant tokens out).
    # The instruction span and padding are excluded either way.
    pool_tokens: str = "all"
    # The instruction span (markers included) is masked out of mean pooling (the paper's choice);
    # True pools it too (the ablation of `umarvel demo --ablations`).
    pool_instruction: bool = False
    attention: str = "bidirectional"
    position_ids: str = "mrope"
    instruction_start: str = "<instruction_start>"
    instruction_end: str = "<instruction_end>"
    emb_token: str = "<emb>"
    # What the assistant turn holds (the released recipe: "<emb>."); the same for train and eval (B4).
    assistant_text: str = "<emb>."
    log_temperature: float = math.log(DEFAULT_TEMPERATURE)
    temperature: float = DEFAULT_TEMPERATURE
    # None = the family's default (4..300 merged tokens: 4*28*28..300*28*28 for Qwen2/2.5-VL,
    # 4*32*32..300*32*32 for Qwen3-VL); always a number after construction.
    min_pixels: int | None = None
    max_pixels: int | None = None
    # None = no compression prompt (the recommended setting, B3); else a suffix per input kind.
    compression_prompt: dict[str, str] | None = None
    text_token_budget: int = 480
    clean_text: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            ("family", self.family, FAMILIES),
            ("pooling", self.pooling, POOLINGS),
            ("pool_tokens", self.pool_tokens, POOL_TOKENS),
            ("attention", self.attention, ATTENTIONS),
            ("position_ids", self.position_ids, POSITION_MODES),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise UmarvelError(f"unknown {name} {value!r}", field=name, expected=" | ".join(allowed))
        family = get_family(self.family)
        if self.min_pixels is None:
            self.min_pixels = family.min_pixels
        if self.max_pixels is None:
            self.max_pixels = family.max_pixels
        if not 0 < self.min_pixels <= self.max_pixels:
            raise UmarvelError(
                f"min_pixels {self.min_pixels} / max_pixels {self.max_pixels}",
                field="max_pixels",
                expected="0 < min_pixels <= max_pixels",
            )
        if self.text_token_budget < 1:
            raise UmarvelError("text_token_budget must be >= 1", field="text_token_budget")

    def set_log_temperature(self, value: float) -> None:
        """Store the temperature in both forms (the log is what trains; the value is for people)."""
        self.log_temperature = float(value)
        self.temperature = float(math.exp(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> UmarvelConfig:
        path = Path(folder) / CONFIG_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise UmarvelError("no umarvel.json in the model folder", file=path.parent) from e
        except json.JSONDecodeError as e:
            raise UmarvelError(f"unreadable JSON ({e})", file=path) from e
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UmarvelError(f"unknown keys {unknown}", file=path, expected=", ".join(sorted(known)))
        if "family" not in data:
            raise UmarvelError("missing key", file=path, field="family", expected=" | ".join(FAMILIES))
        return cls(**data)

    @classmethod
    def exists(cls, folder: str | Path) -> bool:
        return (Path(folder) / CONFIG_NAME).is_file()
