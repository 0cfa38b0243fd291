"""Learning-rate schedules and the moving average of the weights: pure functions of the step
(schedules) and a copy of the model (EMA), so a resumed run continues exactly where it stopped.

Schedules (`train.lr_schedule`), for peak rate `lr`, `warmup` steps and `steps` in all:
- constant: lr, after a linear warmup from 0 when warmup > 0;
- cosine: linear warmup from 0 to lr, then a cosine from lr down to lr * lr_min at the end;
- onecycle: a cosine rise from lr / 25 to lr over the warmup (30% of the steps when warmup is
  0), then a cosine fall to lr * lr_min (lr / 10,000 when lr_min is 0), as Smith & Topin's
  one-cycle policy and torch's OneCycleLR.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

SCHEDULES = ("constant", "cosine", "onecycle")
ONECYCLE_START = 1 / 25  # of the peak, torch's OneCycleLR div_factor
ONECYCLE_END = 1e-4  # of the peak when lr_min is 0 (final_div_factor 1e4)


def _cosine(a: float, b: float, frac: float) -> float:
    """From a (frac 0) to b (frac 1) along half a cosine."""
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, frac))))


def learning_rate(
    step: int, *, lr: float, schedule: str, steps: int, warmup: int, lr_min: float
) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    if schedule == "onecycle":
        rise = warmup if warmup > 0 else max(1, round(0.3 * steps))
        end = lr * (lr_min if lr_min > 0 else ONECYCLE_END)
        if step < rise:
            return _cosine(lr * ONECYCLE_START, lr, step / rise)
        return _cosine(lr, end, (step - rise) / max(1, steps - rise))
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "cosine":
        return _cosine(lr, lr * lr_min, (step - warmup) / max(1, steps - warmup))
    return lr


class WeightAverage:
    """An exponential moving average of a model's weights: `ema = d * ema + (1 - d) * w` after
    every optimizer step, with d = min(decay, (1 + n) / (10 + n)) so that the first steps do
    not average in the random initialisation. `model` is the averaged copy (no gradients);
    buffers (a norm's statistics) are copied as they are."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema = [p for p in self.model.parameters()]
        raw = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema, raw, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1
