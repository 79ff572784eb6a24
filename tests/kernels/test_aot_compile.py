"""The Triton kernels compile for an H100 (sm_90) through triton's real GPU pipeline, without a GPU.

Marked `gpu`: about 100 s on the 2-core box, so `make test` leaves it to scripts/device_check.sh
(`pytest -m gpu`); run it by hand after changing a kernel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.gpu
def test_every_kernel_compiles_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-m", "kernels.aot_check", "90"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if "sm_90 ok" in line]
    names = {line.split(":")[0] for line in lines}
    assert names == {
        "infonce_triton._fwd_kernel",
        "infonce_triton._grad_kernel",
        "infonce_triton._fwd_kernel[scores]",
        "infonce_triton._grad_kernel[scores]",
        "distill_kl_triton._fwd_kernel",
        "distill_kl_triton._bwd_kernel",
    }
