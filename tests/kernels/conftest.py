"""The Triton CPU interpreter for the kernel tests, without leaking TRITON_INTERPRET into other tests.

triton's @jit decides at decoration time whether a kernel is interpreted, so the kernel modules are
(re)loaded while the variable is set; the tests import them lazily through the triton backend.
"""

from __future__ import annotations

import importlib
import sys

import pytest

KERNEL_MODULES = ("kernels.infonce_triton", "kernels.distill_kl_triton")


@pytest.fixture(scope="module")
def triton_interpreter():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        for name in KERNEL_MODULES:
            if name in sys.modules:  # imported earlier for a GPU: re-decorate for the interpreter
                importlib.reload(sys.modules[name])
        yield
