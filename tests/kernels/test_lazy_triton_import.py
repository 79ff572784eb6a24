"""kernels/ and umarvel_cli.losses keep their promise: importing them never imports triton."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_triton():
    code = (
        "import sys, kernels, kernels.infonce, kernels.distill_kl, umarvel_cli.losses; "
        "print('triton' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
