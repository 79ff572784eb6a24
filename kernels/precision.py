"""Accumulation dtype shared by the torch references and the autograd functions."""

from __future__ import annotations

import torch


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp64 inputs accumulate in fp64 (gradcheck), everything else in fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
