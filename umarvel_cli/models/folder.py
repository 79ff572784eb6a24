"""What `--model` may name, resolved to the one model folder every command loads.

Wherever a model folder is accepted (`embed`, `eval mbeir`, `train`, the library functions behind
them), so are the outputs that hold one:
- a model folder: `config.json` (+ weights, `umarvel.json`), e.g. from `init-model`;
- a finished `umarvel train` stage output: its `model/` (the merged model);
- a finished progressive output (`OUT/nli`, `OUT/caption`, `OUT/mbeir`): the last stage's model,
  `OUT/mbeir/model/` (name `OUT/caption` for an earlier stage's).
Anything else is a one-line error that says which of these it is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.manifest import fingerprint, read_manifest
from umarvel_cli.errors import UmarvelError

MODEL_DIR = "model"
TRAIN_STAGE_PREFIX = "train-"  # manifest `stage` of a train output: train-nli, train-caption, ...
FINAL_STAGE = "mbeir"  # the progressive chain's last stage (nli -> caption -> mbeir)
# the --model help of every command that loads a model
MODEL_HELP = (
    "A model folder (e.g. from init-model), a finished `umarvel train` output (its model/), or a "
    f"progressive train output (its {FINAL_STAGE} stage)."
)
EXPECTED = (
    "a model folder (config.json), a finished `umarvel train` output (model/) "
    f"or a progressive train output ({FINAL_STAGE}/model/)"
)


def _is_train_output(path: Path) -> bool:
    manifest = read_manifest(path)
    return manifest is not None and manifest.stage.startswith(TRAIN_STAGE_PREFIX)


def resolve_model_dir(path: str | Path) -> Path:
    """The model folder `path` names (see the module docstring); a one-line error otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise UmarvelError("model folder not found", file=path, expected=EXPECTED)
    if (path / "config.json").is_file():
        return path
    if _is_train_output(path) and (path / MODEL_DIR / "config.json").is_file():
        return path / MODEL_DIR
    if (path / MODEL_DIR).is_dir():
        raise UmarvelError(
            "train output is not finished (no manifest.json): run the same `umarvel train` again",
            file=path,
            expected=EXPECTED,
        )
    final = path / FINAL_STAGE
    if _is_train_output(final) and (final / MODEL_DIR / "config.json").is_file():
        return final / MODEL_DIR
    done = sorted(p.name for p in path.iterdir() if p.is_dir() and _is_train_output(p))
    if done:
        raise UmarvelError(
            f"progressive output without a finished {FINAL_STAGE} stage: name a finished stage's "
            f"folder instead ({', '.join(done)})",
            file=path,
            expected=EXPECTED,
        )
    raise UmarvelError("not a model folder", file=path, expected=EXPECTED)


def model_fingerprint(model_dir: str | Path) -> str:
    """A train output's model is named by its stage manifest (content hash), anything else by its files."""
    model_dir = Path(model_dir)
    if model_dir.name == MODEL_DIR and _is_train_output(model_dir.parent):
        return fingerprint(model_dir.parent)
    return fingerprint(model_dir)


def write_model_folder(
    network: Any,
    tokenizer: Any,
    image_processor: Any,
    config: Any,
    path: str | Path,
    what: str,
    adapted: bool,
) -> Path:
    """A model folder every `--model` takes: weights, tokenizer, image processor, umarvel.json.
    Refused while LoRA layers are attached (`adapted`: save the adapter or merge first)."""
    if adapted:
        raise UmarvelError(
            f"this {what} carries LoRA adapters",
            expected="umarvel_cli.models.lora.save_adapter or merge_lora before save_pretrained",
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    network.save_pretrained(path)
    tokenizer.save_pretrained(path)
    image_processor.save_pretrained(path)
    config.save(path)
    return path
