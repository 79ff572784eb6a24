"""`manifest.json`: the last file a stage writes, so its presence means the output is complete.

It records the stage, its resolved parameters, the content hashes of its inputs, row counts,
schema and package versions and the time. Later stages hash it to name their inputs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.atomic import atomic_write_text
from umarvel_cli.artifacts.schemas import SCHEMA_VERSION
from umarvel_cli.errors import UmarvelError
from umarvel_cli.version import __version__

MANIFEST = "manifest.json"


@dataclass
class Manifest:
    stage: str
    params: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    package_version: str = __version__
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n"


def write_manifest(out_dir: str | Path, manifest: Manifest) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not manifest.created:
        manifest.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    path = out / MANIFEST
    atomic_write_text(path, manifest.to_json())
    return path


def read_manifest(out_dir: str | Path) -> Manifest | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(**data)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as e:
        raise UmarvelError(f"unreadable manifest ({e})", file=path) from e


def require_manifest(out_dir: str | Path, stage: str | None = None) -> Manifest:
    m = read_manifest(out_dir)
    if m is None:
        raise UmarvelError(
            "no manifest.json: not a finished umarvel stage output",
            file=out_dir,
            expected="a completed stage's --out folder",
        )
    if stage is not None and m.stage != stage:
        raise UmarvelError(f"written by stage '{m.stage}'", file=out_dir, expected=f"the output of '{stage}'")
    return m


def fingerprint(path: str | Path) -> str:
    """Content hash of a stage input.

    A finished umarvel output is named by the hash of its manifest (which pins its parameters, inputs
    and counts). Any other file or folder is named by the sizes and modification times of its files,
    which is cheap on a 170 GB dataset and changes whenever a file does.
    """
    p = Path(path)
    h = hashlib.sha256()
    if (p / MANIFEST).is_file():
        h.update(b"manifest\0")
        h.update((p / MANIFEST).read_bytes())
        return "sha256:" + h.hexdigest()
    if p.is_file():
        st = p.stat()
        h.update(f"file\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return "stat:" + h.hexdigest()
    if p.is_dir():
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                f = Path(root) / name
                st = f.stat()
                h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "stat:" + h.hexdigest()
    raise UmarvelError("input does not exist", file=p)
