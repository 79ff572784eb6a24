"""A model or adapter folder is checked before anything loads it: safetensors only, readable config.

Pickled weights (`*.bin`, `*.pt`, `*.pth`, `*.ckpt`) can run code when loaded, so they are refused
with a message saying how to convert them. A missing, empty or truncated weight file and a
`config.json` that is not JSON are one-line errors naming the file, not loader tracebacks.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from umarvel_cli.errors import UmarvelError

PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UmarvelError(f"not valid UTF-8 (byte {e.start})", file=path) from None
    except json.JSONDecodeError as e:
        raise UmarvelError(f"not valid JSON ({e.msg})", file=path, line=e.lineno) from None


def _check_safetensors(path: Path) -> None:
    """The header must parse and the data it describes must fit in the file (truncation)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n <= 0 or 8 + n > size:
                raise ValueError("header length beyond the end of the file")
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as e:
        raise UmarvelError(f"not a readable safetensors file ({e})", file=path) from None
    if 8 + n + end > size:
        raise UmarvelError(
            f"truncated: the header describes {8 + n + end:,} bytes, the file has {size:,}",
            file=path,
            expected="a complete copy of the weights",
        )


def check_weights_folder(path: str | Path, kind: str = "model") -> None:
    """Refuse pickled weights and broken safetensors in a model or adapter folder."""
    path = Path(path)
    tensors = sorted(path.glob("*.safetensors"))
    pickled = sorted(p for pattern in PICKLED for p in path.glob(pattern))
    if pickled and not tensors:
        raise UmarvelError(
            f"{kind} weights are pickled ({pickled[0].name}); umarvel loads safetensors only, since a "
            "pickle can run code when it is loaded",
            file=path,
            expected="*.safetensors weights (convert with transformers' save_pretrained(safe_serialization=True))",
        )
    if not tensors:
        raise UmarvelError(
            f"no {kind} weights (*.safetensors)", file=path, expected=f"a complete {kind} folder"
        )
    for t in tensors:
        _check_safetensors(t)


def check_model_folder(path: str | Path, weights: bool = True) -> Path:
    """A model folder that `Embedder.from_pretrained` can load without a traceback (`weights=False`:
    its JSON files only, checked before the backbone family is read from them)."""
    path = Path(path)
    if not path.is_dir():
        raise UmarvelError("model folder not found", file=path, expected="a folder with config.json")
    config = path / "config.json"
    if not config.is_file():
        # a finished `umarvel train` output points at its merged model
        if (path / "model" / "config.json").is_file():
            return check_model_folder(path / "model", weights)
        raise UmarvelError("no config.json", file=path, expected="a model folder (config.json + weights)")
    for name in ("config.json", "umarvel.json", "tokenizer_config.json", "preprocessor_config.json"):
        if (path / name).is_file():
            _check_json(path / name)
    if weights:
        check_weights_folder(path, "model")
    return path
