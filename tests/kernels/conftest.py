"""Where the kernel tests run: Triton's CPU interpreter by default, compiled on a GPU under
UMARVEL_TEST_ON_GPU=1 (the device check in docs/benchmarks.md).

triton's @jit decides at decoration time whether a kernel is interpreted, so for the interpreter the
kernel modules are (re)loaded while the variable is set, without leaking it into other tests; the
tests import them lazily through the triton backend.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

KERNEL_MODULES = ("kernels.infonce_triton", "kernels.distill_kl_triton")
ON_GPU = os.environ.get("UMARVEL_TEST_ON_GPU") == "1"


@pytest.fixture(scope="module")
def kernel_device():
    """torch.device the kernel tests put their tensors on: "cuda" (compiled) or "cpu" (interpreted)."""
    if ON_GPU:
        if not torch.cuda.is_available():
            pytest.fail("UMARVEL_TEST_ON_GPU=1 but torch sees no CUDA device")
        yield torch.device("cuda")
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        for name in KERNEL_MODULES:
            if name in sys.modules:  # imported earlier for a GPU: re-decorate for the interpreter
                importlib.reload(sys.modules[name])
        yield torch.device("cpu")
