"""A pickle reader that admits only plain containers, strings and numbers, never a class or a call.

Some releases (MSVD's raw-captions.pkl) ship data as pickles; `pickle.load` on such a file would run
whatever callables it names. This unpickler refuses every global lookup, so a pickle that tries to
build an object (os.system, builtins.eval, any class) fails before anything runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from umarvel_cli.errors import UmarvelError


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id")


def load_plain_pickle(path: Path) -> Any:
    """dicts, lists, tuples, sets, str, bytes, numbers, bools and None; anything else is a bad input."""
    if not path.is_file():
        raise UmarvelError("file not found", file=path)
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise UmarvelError(
            f"not a plain-data pickle ({e})", file=path, expected="only dicts, lists and strings"
        ) from None
