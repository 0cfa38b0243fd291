"""Mixed precision in one place: the autocast context of a `train.precision` setting.

"32" runs in float32; "bf16-mixed" runs convolutions and matmuls in bfloat16 (CPU and CUDA)
with float32 master weights; "16-mixed" uses float16 on CUDA (bf16 on CPU, which has no fast
fp16) with a gradient scaler against underflow.
"""

from __future__ import annotations

import contextlib

import torch


def compute_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device`, or None for float32."""
    if precision == "32":
        return None
    if precision == "16-mixed" and device.type == "cuda":
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for `precision` on `device` (a no-op for "32")."""
    dtype = compute_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A GradScaler where float16 gradients may underflow (16-mixed on CUDA), else None."""
    if compute_dtype(device, precision) is torch.float16:
        return torch.amp.GradScaler(device.type)
    return None
