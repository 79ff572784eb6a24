"""LoRA on the language model (peft): apply, save/load the adapter, merge into a plain model folder.

Targets are listed by full module name (every nn.Linear of the language model, optionally of the
vision tower), so nothing depends on a regex matching a family's naming. The temperature is kept
in umarvel.json next to the adapter and in the merged folder (the released merge script dropped
it: bug B9). The reranker (a generative model, no temperature) goes through the same functions.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.attention import language_model
from umarvel_cli.models.checks import check_weights_folder
from umarvel_cli.models.embedder import Embedder
from umarvel_cli.models.reranker import Reranker
from umarvel_cli.models.umarvel_config import UmarvelConfig

# What LoRA adapts: a model holding its network as `backbone`, with `sync_config` and `save_pretrained`.
Adaptable = Embedder | Reranker

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_target_names(
    embedder: Adaptable, target_modules: list[str] | None = None, train_vision: bool = False
) -> list[str]:
    """Full names of the Linear layers to adapt: language model (and the vision tower if asked)."""
    backbone = embedder.backbone
    lm = language_model(backbone)
    wanted = set(target_modules or DEFAULT_TARGETS)
    names = []
    lm_ids = {id(m) for m in lm.modules()}
    for name, module in backbone.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        leaf = name.rsplit(".", 1)[-1]
        in_lm = id(module) in lm_ids
        in_vision = ".visual." in f".{name}." or name.startswith("visual.")
        if (in_lm and leaf in wanted) or (train_vision and in_vision):
            names.append(name)
    if not names:
        raise UmarvelError(f"no Linear layer matches target modules {sorted(wanted)}", field="target_modules")
    return names


def apply_lora(
    embedder: Adaptable,
    rank: int,
    alpha: float,
    dropout: float = 0.05,
    target_modules: list[str] | None = None,
    train_vision: bool = False,
) -> Adaptable:
    """Wrap the backbone with LoRA adapters; only adapter weights train (vision frozen by default)."""
    from peft import LoraConfig, get_peft_model

    if hasattr(embedder.backbone, "peft_config"):
        raise UmarvelError("the embedder already carries LoRA adapters", expected="merge_lora first")
    targets = lora_target_names(embedder, target_modules, train_vision)
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none", target_modules=targets)
    embedder.backbone = get_peft_model(embedder.backbone, cfg)
    return embedder


def save_adapter(embedder: Adaptable, path: str | Path) -> Path:
    """Adapter weights + adapter_config.json + umarvel.json (with the current temperature)."""
    if not hasattr(embedder.backbone, "peft_config"):
        raise UmarvelError("the embedder has no LoRA adapter to save", expected="apply_lora first")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    embedder.backbone.save_pretrained(path)
    embedder.sync_config().save(path)
    return path


def load_adapter(embedder: Embedder, path: str | Path, trainable: bool = False) -> Embedder:
    """Attach a saved adapter (and its temperature) to a plain embedder of the same base model."""
    from peft import PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise UmarvelError("not a LoRA adapter folder (no adapter_config.json)", file=path)
    check_weights_folder(path, "adapter")
    embedder.backbone = PeftModel.from_pretrained(
        embedder.backbone, path, is_trainable=trainable, use_safetensors=True
    )
    if UmarvelConfig.exists(path):
        saved = UmarvelConfig.load(path)
        embedder.log_temperature.data.fill_(saved.log_temperature)
        embedder.sync_config()
    return embedder


def merge_lora(embedder: Adaptable) -> Adaptable:
    """Fold the adapters into the base weights; the embedder becomes a plain one again."""
    if not hasattr(embedder.backbone, "peft_config"):
        raise UmarvelError("the embedder has no LoRA adapter to merge", expected="apply_lora or load_adapter")
    embedder.backbone = embedder.backbone.merge_and_unload()
    return embedder


def save_merged(embedder: Adaptable, path: str | Path) -> Path:
    """Merge (if adapters are attached) and write a plain model folder keeping umarvel.json and τ."""
    if hasattr(embedder.backbone, "peft_config"):
        merge_lora(embedder)
    return embedder.save_pretrained(path)
