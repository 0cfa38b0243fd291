"""Scheduled sampling: how often the model is fed the true frame instead of its own prediction.

The schedules are pure functions of the iteration. Masks are drawn from a generator seeded by
(seed, step), so a resumed run draws exactly the masks of an uninterrupted one.

- Linear (PredRNN, MIM, OpenSTL): eta starts at 1.0 and falls by 2e-5 per iteration to 0 at
  iteration 50,000; each sample and each future step but the last (T_out - 1 of them) feeds the
  true frame with probability eta. At test time the mask is all zeros (mask=None).
- Reverse (PredRNN-V2): the context steps are also mixed, with probability
  r_eta = 1 - 0.5 exp(-(itr - s1) / alpha) of the true frame, rising from 0.5 to 1, while the
  future part's eta falls linearly from 0.5 to 0 between s1 and s2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from mimcast.errors import ConfigError
from mimcast.settings import setting, validate


def linear_eta(step: int, start: float = 1.0, decay: float = 2e-5, stop: float = 0.0) -> float:
    """eta at `step` for the linear schedule: start - decay * step, never below `stop`."""
    return max(stop, start - decay * step)


def reverse_etas(
    step: int, s1: int = 25_000, s2: int = 50_000, alpha: float = 5_000.0
) -> tuple[float, float]:
    """(r_eta, eta) of reverse scheduled sampling at `step` (PredRNN-V2)."""
    if step < s1:
        return 0.5, 0.5
    if step < s2:
        return 1.0 - 0.5 * math.exp(-(step - s1) / alpha), 0.5 - 0.5 * (step - s1) / (s2 - s1)
    return 1.0, 0.0


def bernoulli_mask(p: float, batch: int, steps: int, generator: torch.Generator) -> Tensor:
    """(batch, steps, 1, 1, 1) float mask, 1 with probability p: one draw per sample and step."""
    if steps <= 0:
        return torch.zeros(batch, 0, 1, 1, 1)
    return (torch.rand(batch, steps, 1, 1, 1, generator=generator) < p).float()


@dataclass(frozen=True)
class SamplingSchedule:
    """Which schedule a run uses and its constants: the `train.sampling` config section."""

    SECTION: ClassVar[str] = "train.sampling"

    kind: str = setting("linear", choices=("linear", "reverse", "none"))
    eta_start: float = setting(1.0, low=0.0, high=1.0)
    eta_decay: float = setting(2e-5, low=0.0, high=1.0)
    reverse_s1: int = setting(25_000, low=0)
    reverse_s2: int = setting(50_000, low=1)
    reverse_alpha: float = setting(5_000.0, above=0.0)

    def __post_init__(self) -> None:
        validate(self, self.SECTION)
        if self.reverse_s2 <= self.reverse_s1:
            raise ConfigError(
                f"train.sampling.reverse_s2 ({self.reverse_s2}) must be above reverse_s1 "
                f"({self.reverse_s1})"
            )

    def etas(self, step: int) -> tuple[float | None, float]:
        """(context eta or None when context steps always see true frames, future eta)."""
        if self.kind == "linear":
            return None, linear_eta(step, self.eta_start, self.eta_decay)
        if self.kind == "reverse":
            return reverse_etas(step, self.reverse_s1, self.reverse_s2, self.reverse_alpha)
        return None, 0.0  # "none": always feed the predictions

    def masks(
        self, step: int, *, batch: int, seq_len: int, context_len: int, seed: int
    ) -> tuple[Tensor | None, Tensor | None]:
        """(mask, context_mask) for Forecaster.forward at training step `step`."""
        r_eta, eta = self.etas(step)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        future_steps = seq_len - context_len - 1
        mask = bernoulli_mask(eta, batch, future_steps, gen) if eta > 0 else None
        context_mask = None
        if r_eta is not None and r_eta < 1.0:
            context_mask = bernoulli_mask(r_eta, batch, context_len - 1, gen)
        return mask, context_mask
