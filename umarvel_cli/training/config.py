"""Training configuration: the per-stage YAML defaults shipped in `umarvel_cli/configs/`, a profile,
a user `--config` file and `--set key=value` overrides, resolved into one validated `TrainConfig`.

Order (later wins): `train_<stage>.yaml` → profile section for the stage (`train_<profile>.yaml`) →
the user file's top-level keys → its `<stage>:` section → `--set key=value` → `--set <stage>.key=value`.
An unknown key or a value of the wrong type is a one-line error naming where it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from umarvel_cli.errors import UmarvelError

# single stages (each has `configs/train_<stage>.yaml`); `progressive` is the chain of the first three
STAGES = ("nli", "caption", "mbeir", "hardneg", "distill", "rerank")
PROGRESSIVE_CHAIN = ("nli", "caption", "mbeir")
# the training objective (`training.objectives`) each stage runs
STAGE_OBJECTIVES = {
    "nli": "infonce",
    "caption": "infonce",
    "mbeir": "infonce",
    "hardneg": "hardneg",
    "distill": "distill",
    "rerank": "rerank",
}
PROFILES = ("paper", "demo")
CHOICES = {
    "schedule": ("cosine", "constant"),
    "batching": ("mixed", "task"),
    "instruction": ("none", "first", "random"),
    "rerank_prompt": ("clean", "released"),
    "loss_impl": ("auto", "chunked", "plain", "eager", "triton", "hybrid"),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training stage (see the YAML files for what each means and the paper values)."""

    lora: bool
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    lora_targets: list[str] | None
    train_vision: bool
    lr: float
    weight_decay: float
    adam_beta1: float
    adam_beta2: float
    adam_eps: float
    warmup_ratio: float
    schedule: str
    max_grad_norm: float | None
    epochs: int
    max_steps: int | None
    batch_size: int
    grad_accum: int
    chunk_size: int
    temperature: float | None
    learn_temperature: bool
    temperature_min: float
    temperature_max: float
    temperature_lr: float | None
    bidirectional: bool
    hard_negatives: int
    mask_false_negatives: bool
    batching: str
    instruction: str
    seed: int
    bf16: bool
    gradient_checkpointing: bool
    loss_impl: str
    save_every: int
    keep_checkpoints: int
    # Keys with a default: one stage's own knobs, which the other stages' YAML files need not name.
    max_image_pixels: int | None = None  # cap on image pixels while training (null = the model's own)
    distill_topk: int = 50  # distill: candidates per query, best fused score first
    fusion_weights: dict[str, float] | None = None  # distill: w per task in F = cos + w*P(Yes)
    distill_infonce_weight: float = 0.0  # distill: > 0 adds w x in-batch InfoNCE to the KL
    rerank_prompt: str = "clean"  # rerank: the clean instruction, or the released one verbatim
    rerank_random_negatives: float = 0.0  # rerank: share of "No" candidates drawn from the task's positives

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def configs_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "configs"


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as e:
        raise UmarvelError(f"not valid UTF-8 (byte {e.start})", file=path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or type(e).__name__
        raise UmarvelError(
            f"not valid YAML ({problem})", file=path, line=mark.line + 1 if mark is not None else None
        ) from None
    except OSError as e:
        raise UmarvelError(f"cannot read config ({e.strerror})", file=path) from e
    if not isinstance(data, dict):
        raise UmarvelError("a config file must be a mapping of key: value", file=path)
    return data


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check `value` against the field's type (ints are accepted for floats)."""
    hint = typing.get_type_hints(TrainConfig)[key]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for t in allowed:
        if t is type(None) and value is None:
            return None
        origin = typing.get_origin(t)
        numbers = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in value.items()
        )
        if origin is dict and numbers:
            return {k: float(v) for k, v in value.items()}
        if origin is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):  # YAML 1.1 reads "5e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if t is str and isinstance(value, str):
            if key in CHOICES and value not in CHOICES[key]:
                raise UmarvelError(
                    f"{value!r} is not a choice", file=source, field=key, expected=" | ".join(CHOICES[key])
                )
            return value
    names = " or ".join("null" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed)
    raise UmarvelError(f"value {value!r} has the wrong type", file=source, field=key, expected=names)


def _apply(base: dict[str, Any], updates: Mapping[str, Any], source: str) -> None:
    for key, value in updates.items():
        if key not in FIELDS:
            near = difflib.get_close_matches(key, list(FIELDS), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise UmarvelError(
                f"unknown config key {key!r}{hint}",
                file=source,
                expected="one of: " + ", ".join(sorted(FIELDS)),
            )
        base[key] = _coerce(key, value, source)


def parse_sets(sets: Sequence[str]) -> list[tuple[str | None, str, Any]]:
    """`key=value` or `stage.key=value` → (stage or None, key, YAML-parsed value)."""
    out = []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UmarvelError(f"--set {item!r} is not key=value", field="--set", expected="key=value")
        stage, dot, name = key.partition(".")
        if dot and stage not in STAGES:
            near = difflib.get_close_matches(stage, STAGES, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise UmarvelError(
                f"--set {item!r}: unknown stage prefix {stage!r}{hint}",
                field="--set",
                expected=" | ".join(STAGES),
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise UmarvelError(
                f"--set {item!r}: value is not YAML ({getattr(e, 'problem', None) or type(e).__name__})",
                field="--set",
            ) from None
        out.append((stage if dot else None, name if dot else key, value))
    return out


def resolve_config(
    stage: str, profile: str = "paper", config_file: Path | None = None, sets: Sequence[str] = ()
) -> TrainConfig:
    """The validated config of `stage` (see the module docstring for the order)."""
    if stage not in STAGES:
        raise UmarvelError(f"unknown stage {stage!r}", field="--stage", expected=" | ".join(STAGES))
    if profile not in PROFILES:
        raise UmarvelError(f"unknown profile {profile!r}", field="--profile", expected=" | ".join(PROFILES))
    base_path = configs_dir() / f"train_{stage}.yaml"
    values: dict[str, Any] = {}
    _apply(values, _load_yaml(base_path), str(base_path))
    if profile != "paper":
        prof_path = configs_dir() / f"train_{profile}.yaml"
        prof = _load_yaml(prof_path)
        _apply(values, prof.get("all") or {}, str(prof_path))
        _apply(values, prof.get(stage) or {}, str(prof_path))
    if config_file is not None:
        user = _load_yaml(config_file)
        sections = {k: user.pop(k) for k in list(user) if k in STAGES}
        _apply(values, user, str(config_file))
        if not isinstance(sections.get(stage) or {}, dict):
            raise UmarvelError(f"section '{stage}' must be a mapping", file=config_file)
        _apply(values, sections.get(stage) or {}, str(config_file))
    parsed = parse_sets(sets)
    _apply(values, {k: v for s, k, v in parsed if s is None}, "--set")
    _apply(values, {k: v for s, k, v in parsed if s == stage}, "--set")
    missing = sorted(k for k, f in FIELDS.items() if k not in values and f.default is dataclasses.MISSING)
    if missing:
        raise UmarvelError(f"config misses keys {missing}", file=base_path)
    cfg = TrainConfig(**values)
    _check_values(cfg)
    return cfg


def size_sets(profile: str, size: str, sets: Sequence[str] = ()) -> list[str]:
    """`sets` preceded by the profile's `sizes: <size>:` section as `stage.key=value` items.

    A data size the profile's epochs were not chosen for (the tiny demo: a few steps per stage)
    scales its steps there; a key that `sets` names itself (bare or for that stage) keeps the user's
    value, and a size without a section adds nothing.
    """
    if profile == "paper":
        return list(sets)
    path = configs_dir() / f"train_{profile}.yaml"
    section = (_load_yaml(path).get("sizes") or {}).get(size) or {}
    named = {(stage, key) for stage, key, _ in parse_sets(sets)}
    out = []
    for stage, values in section.items():
        if stage not in STAGES or not isinstance(values, dict):
            raise UmarvelError(
                f"sizes.{size}.{stage} must be a stage section", file=path, expected=" | ".join(STAGES)
            )
        for key, value in values.items():
            if (None, key) not in named and (stage, key) not in named:
                out.append(f"{stage}.{key}={json.dumps(value)}")
    return [*out, *sets]


def _check_values(cfg: TrainConfig) -> None:
    for key, value in cfg.to_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UmarvelError(f"{key} is {value}", field=key, expected="a finite number")
    positive = ("lr", "batch_size", "grad_accum", "epochs", "save_every", "keep_checkpoints", "lora_rank")
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise UmarvelError(f"{key} must be > 0", field=key)
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise UmarvelError(
            f"max_steps must be >= 1 (or null for whole epochs), not {cfg.max_steps}", field="max_steps"
        )
    if cfg.weight_decay < 0:
        raise UmarvelError(f"weight_decay must be >= 0, not {cfg.weight_decay}", field="weight_decay")
    if not 0 <= cfg.lora_dropout < 1:
        raise UmarvelError(f"lora_dropout must be in [0, 1), not {cfg.lora_dropout}", field="lora_dropout")
    if cfg.lora_alpha <= 0:
        raise UmarvelError(f"lora_alpha must be > 0, not {cfg.lora_alpha}", field="lora_alpha")
    for key in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(cfg, key) < 1:
            raise UmarvelError(f"{key} must be in [0, 1)", field=key)
    if cfg.adam_eps <= 0:
        raise UmarvelError("adam_eps must be > 0", field="adam_eps")
    if cfg.max_grad_norm is not None and cfg.max_grad_norm <= 0:
        raise UmarvelError("max_grad_norm must be > 0 (or null)", field="max_grad_norm")
    if cfg.temperature_lr is not None and cfg.temperature_lr < 0:
        raise UmarvelError("temperature_lr must be >= 0 (or null)", field="temperature_lr")
    if cfg.max_image_pixels is not None and cfg.max_image_pixels < 1:
        raise UmarvelError("max_image_pixels must be >= 1 (or null)", field="max_image_pixels")
    if cfg.distill_topk < 1 or cfg.distill_infonce_weight < 0:
        raise UmarvelError("need distill_topk >= 1 and distill_infonce_weight >= 0", field="distill_topk")
    for task, w in (cfg.fusion_weights or {}).items():
        if not math.isfinite(w) or w < 0:
            raise UmarvelError(f"fusion weight {w} of {task!r}", field="fusion_weights", expected=">= 0")
    if not 0 <= cfg.rerank_random_negatives <= 1:
        raise UmarvelError("rerank_random_negatives must be in [0, 1]", field="rerank_random_negatives")
    if cfg.chunk_size < 0 or cfg.hard_negatives < 0:
        raise UmarvelError("chunk_size and hard_negatives must be >= 0", field="chunk_size/hard_negatives")
    if not 0 < cfg.temperature_min <= cfg.temperature_max:
        raise UmarvelError("need 0 < temperature_min <= temperature_max", field="temperature_min")
    if cfg.temperature is not None and not cfg.temperature_min <= cfg.temperature <= cfg.temperature_max:
        raise UmarvelError(
            f"temperature {cfg.temperature} is outside [{cfg.temperature_min}, {cfg.temperature_max}]",
            field="temperature",
        )
    if not 0 <= cfg.warmup_ratio < 1:
        raise UmarvelError("warmup_ratio must be in [0, 1)", field="warmup_ratio")
    if cfg.batch_size % cfg.grad_accum:
        raise UmarvelError(
            f"batch_size {cfg.batch_size} is not divisible by grad_accum {cfg.grad_accum}", field="grad_accum"
        )
