"""Small inputs for the CLI safety tests: embeddings, a search output, bad files of every kind."""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from tests.retrieval.fixtures import tie_heavy_vectors, write_embeddings
from umarvel_cli.app import app

runner = CliRunner()


def cli(*args: object, input: str | None = None):
    """Run `umarvel ARGS` in-process; stdout and stderr stay apart."""
    return runner.invoke(app, [str(a) for a in args], input=input)


def cli_process(*args: object, **kw) -> subprocess.CompletedProcess:
    """Run `python -m umarvel_cli ARGS` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "umarvel_cli", *map(str, args)], capture_output=True, text=True, **kw
    )


PROGRESS_LINE = re.compile(r".+: [0-9,./]+ .* elapsed \d\d:\d\d(:\d\d)?( ETA .*)?")


def error_line(result) -> str:
    """The single stderr line of a refused run (exit 2); fails on a traceback or extra output.

    Plain progress lines of phases that completed before the error (`... elapsed MM:SS`, what a
    log shows when stderr is not a terminal) may precede it; nothing else may."""
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not PROGRESS_LINE.fullmatch(ln)]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output, stderr
    return lines[0]


def embeddings(root: Path) -> tuple[Path, Path]:
    """Candidate (40) and query (6) embedding outputs, with their manifests."""
    c = write_embeddings(
        root / "c", [f"d{i}" for i in range(40)], tie_heavy_vectors(40, seed=1), rows_per_shard=9
    )
    q = write_embeddings(
        root / "q", [f"q{i}" for i in range(6)], tie_heavy_vectors(6, seed=2), side="queries"
    )
    return c, q


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's header)."""
    data = bytearray(png_bytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def folder_is_clean(path: Path) -> bool:
    """Nothing left behind: the folder is absent or empty."""
    return not path.exists() or not any(path.iterdir())
