"""The trivial forecasts a model must beat to be worth anything, from context frames alone.

Every function takes a context (B, Tc, C, H, W), a torch tensor or a numpy array, in any units
whose range is ``value_range``, and returns a ``BaselineForecast`` of ``horizon`` frames of the
same type, device and units.

* ``persistence``: the last context frame, repeated exactly.
* ``flow``: optical-flow extrapolation. The motion is estimated from the last two context frames
  with OpenCV's DIS dense optical flow (preset ultrafast: on Moving MNIST it scores within 1% of
  Farneback and of DIS's slower presets, and it gives an exactly zero field on frames that do
  not move, where Farneback gives a few hundredths of a pixel). Multi-channel frames: the motion
  is estimated on the channel mean (rescaled from ``value_range`` to 8-bit gray, which DIS
  needs) and every channel is moved along it. The field is held constant in place (Eulerian
  persistence of the motion) and the last frame is advected along it semi-Lagrangian: each lead
  time traces every pixel back one more step along the field and samples the last frame there,
  once, bilinearly, with the border replicated (so the frame is interpolated once per lead
  time, not blurred step by step). Where the field moves no pixel by ``MIN_MOTION`` pixel per
  frame the method has found no motion: ``no_motion`` says so per sequence, and there the
  forecast is persistence's (evaluations report it rather than show persistence under another
  name).

``BASELINES`` is the one table of baselines by name; ``select_baselines`` reads the choice of
``eval.baselines`` / ``--baselines`` (``none``, a name, or ``all``: all whose library is
installed).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mimcast.errors import ConfigError, DataError

MIN_MOTION = 0.01  # pixels per frame: a field slower than this everywhere is no motion


@dataclass(frozen=True)
class BaselineForecast:
    """``frames`` (B, horizon, C, H, W), of the context's type and units; ``no_motion`` (B,)
    bool: the method found no motion in that sequence (always False for persistence)."""

    frames: Any  # Tensor or np.ndarray, as the context
    no_motion: np.ndarray


def _as_tensor(context: Any) -> tuple[Tensor, bool]:
    """The context as a float tensor (B, Tc, C, H, W), and whether it came as numpy."""
    is_numpy = isinstance(context, np.ndarray)
    x = torch.from_numpy(np.asarray(context, np.float64)) if is_numpy else context
    if x.ndim != 5 or x.shape[1] < 1 or 0 in x.shape:
        raise DataError(f"a baseline needs a context (B, Tc, C, H, W), got {tuple(x.shape)}")
    return (x if x.is_floating_point() else x.float()), is_numpy


def _returned(frames: Tensor, is_numpy: bool, no_motion: np.ndarray) -> BaselineForecast:
    return BaselineForecast(frames.numpy() if is_numpy else frames, no_motion)


def persistence(
    context: Any, horizon: int, value_range: tuple[float, float] = (0.0, 1.0)
) -> BaselineForecast:
    """The last context frame repeated ``horizon`` times (``value_range`` is not needed)."""
    x, is_numpy = _as_tensor(context)
    frames = x[:, -1:].expand(-1, horizon, -1, -1, -1).clone()
    return _returned(frames, is_numpy, np.zeros(len(x), bool))


def _gray_u8(frames: Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """(B, C, H, W) -> (B, H, W) uint8: the channel mean, value_range spanning 0-255."""
    lo, hi = value_range
    scale = 255.0 / max(hi - lo, 1e-12)
    g = ((frames.double().mean(1) - lo) * scale).round().clamp(0, 255)
    return g.to(torch.uint8).cpu().numpy()


def motion_field(context: Tensor, value_range: tuple[float, float]) -> Tensor:
    """(B, 2, H, W) float: where each pixel of the last frame was one frame earlier, as
    (dx, dy) pixels, from DIS optical flow between the last two context frames."""
    import cv2

    if context.shape[1] < 2:
        raise DataError("optical flow needs at least 2 context frames")
    last, prev = _gray_u8(context[:, -1], value_range), _gray_u8(context[:, -2], value_range)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    # calc(I0, I1) gives u with I0(p) = I1(p + u(p)): from the last frame back to the one before
    fields = [dis.calc(a, b, None) for a, b in zip(last, prev, strict=True)]  # (H, W, 2) each
    u = torch.from_numpy(np.stack(fields)).permute(0, 3, 1, 2)
    return u.to(device=context.device, dtype=context.dtype)


def _sample(img: Tensor, pos: Tensor) -> Tensor:
    """``img`` (B, K, H, W) sampled bilinearly at pixel positions ``pos`` (B, 2, H, W) as
    (x, y); outside the frame, the border's values."""
    h, w = img.shape[-2:]
    gx = pos[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = pos[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def advect(last: Tensor, u: Tensor, horizon: int) -> Tensor:
    """``last`` (B, C, H, W) moved along the constant field ``u`` (B, 2, H, W) (where each pixel
    was one frame earlier) for 1..horizon frames: (B, horizon, C, H, W), semi-Lagrangian."""
    h, w = last.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=u.dtype, device=u.device),
        torch.arange(w, dtype=u.dtype, device=u.device),
        indexing="ij",
    )
    grid = torch.stack([xs, ys])[None]
    back = torch.zeros_like(u)  # displacement back to the last frame, accumulated per lead
    out = []
    for _ in range(horizon):
        back = back + _sample(u, grid + back)  # one more step back along the field
        out.append(_sample(last, grid + back))
    return torch.stack(out, dim=1)


def flow(
    context: Any, horizon: int, value_range: tuple[float, float] = (0.0, 1.0)
) -> BaselineForecast:
    """Optical-flow extrapolation of the last context frame (module docstring)."""
    x, is_numpy = _as_tensor(context)
    u = motion_field(x, value_range)
    no_motion = (u.abs().amax(dim=(1, 2, 3)) < MIN_MOTION).cpu().numpy()
    frames = advect(x[:, -1], u, horizon)
    still = torch.from_numpy(no_motion).to(x.device)
    frames[still] = x[still, -1:]  # persistence exactly, not the frame resampled in place
    return _returned(frames, is_numpy, no_motion)


@dataclass(frozen=True)
class Baseline:
    """A trivial forecast by name: what reports call it, the function, what it needs."""

    name: str
    label: str
    forecast: Callable[..., BaselineForecast]
    min_context: int  # context frames it needs
    needs: str | None = None  # the module it imports; None: torch alone
    install: str = ""  # how to get that module

    def installed(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("persistence", "persistence", persistence, min_context=1),
        Baseline(
            "flow",
            "optical flow",
            flow,
            min_context=2,
            needs="cv2",
            install="OpenCV is not installed (pip install mimcast[formats])",
        ),  # fmt: skip
    )
}
CHOICES = ("none", *BASELINES, "all")


def baseline_named(name: str, flag: str = "--method") -> Baseline:
    """The baseline called `name`, installed, or a ConfigError naming `flag`."""
    if name not in BASELINES:
        raise ConfigError(f"{flag} must be one of {', '.join(BASELINES)}, got {name!r}")
    b = BASELINES[name]
    if not b.installed():
        raise ConfigError(f"{flag} {name}: {b.install}")
    return b


def select_baselines(choice: str, flag: str = "eval.baselines") -> tuple[list[Baseline], dict]:
    """The baselines `choice` (one of CHOICES) selects, and {name: why} for those that `all`
    leaves out because their library is not installed."""
    if choice not in CHOICES:
        raise ConfigError(f"{flag} must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "none":
        return [], {}
    if choice != "all":
        return [baseline_named(choice, flag)], {}
    chosen = [b for b in BASELINES.values() if b.installed()]
    return chosen, {b.name: b.install for b in BASELINES.values() if not b.installed()}
