"""Frame-wise evaluation metrics, with the conventions of the MIM / PredRNN papers.

Inputs are ``pred`` and ``true`` tensors of shape (B, T, C, H, W) in model units, whose valid
range is ``data_range`` (default (0, 1)). Conventions (see docs / REFERENCE.md):

* ``pred`` is clipped to ``data_range`` before every metric (TF MIM clips to [0, 1]).
* ``mse`` / ``mae``: squared / absolute error **summed over the C*H*W pixels of a frame**,
  averaged over sequences (the paper's Moving MNIST MSE 52.0). ``mse_pixel`` / ``mae_pixel``:
  the same per pixel. ``mse_units`` / ``mae_units`` (only with ``to_units``): per pixel, on
  ``to_units(pred)`` and ``to_units(true)`` (e.g. TaxiBJ flows).
* SSIM and PSNR are computed on frames rescaled from ``data_range`` to [0, 1].
  ``ssim``: gaussian window 11, sigma 1.5, data_range 1, averaged over the valid region (border
  of 5 px cropped, as scikit-image; own torch code, see ``ssim_frames``); multi-channel frames:
  per-channel SSIM averaged over channels.
  ``ssim_legacy``: old scikit-image ``compare_ssim`` defaults used by the reference code
  (uniform 7x7 window, sample covariance, data_range 2): inflated, for published tables only.
* ``psnr``: TF MIM/PredRNN convention on ``uint8(x*255)`` (truncation like ``np.uint8`` after
  clipping), ``20 log10(255) - 10 log10(MSE per pixel)``, per sequence and frame, then averaged;
  identical frames are capped at ``PSNR_CAP`` = 100 dB.
* ``csi@t`` / ``pod@t`` / ``far@t``: an event is ``value >= t``; thresholds are in model units
  (``threshold_units="model"``, on clipped values) or data units (``"data"``, after
  ``to_units``). Hits, misses and false alarms are summed over the whole dataset per frame and
  the ratios taken at the end; the "mean" is the ratio of counts pooled over all frames.
  A ratio with a zero denominator is NaN.

``FrameMetrics`` keeps float64 per-frame **sums** so that distributed runs can all-reduce them.
Scoring several forecasts of one truth (a model and its baselines), ``prepare(true)`` makes a
``Truth`` that holds what the metrics take from the truth alone (its SSIM window moments, PSNR
levels, data units, events), so each forecast pays only for its own side; a forecast that
repeats one frame (persistence) has its side computed once per sequence. The values are those
of scoring each forecast alone.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mimcast.errors import ConfigError, DataError
from mimcast.evaluation.ssim import GAUSSIAN, LEGACY, Moments, check_frames, moments, ssim_of
from mimcast.evaluation.ssim import ssim_frames as ssim_frames  # the metric functions, together
from mimcast.evaluation.ssim import ssim_legacy_frames as ssim_legacy_frames

PSNR_CAP = 100.0
_SUM_NAMES = ("mse", "mae", "mse_pixel", "mae_pixel")


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _levels(frames01: Tensor) -> Tensor:
    """The 8-bit levels PSNR is taken on: ``uint8(clip(x, 0, 1) * 255)`` of float64 frames."""
    return torch.floor(frames01.clamp(0, 1) * 255)


def _psnr(pred_levels: Tensor, true_levels: Tensor) -> Tensor:
    mse = (pred_levels - true_levels).pow(2).mean(dim=(2, 3, 4))  # (B, T)
    psnr = 20 * math.log10(255.0) - 10 * torch.log10(mse)
    return psnr.clamp(max=PSNR_CAP)


def psnr_frames(pred: Tensor, true: Tensor) -> Tensor:
    """TF MIM/PredRNN PSNR per frame of frames in [0, 1]: (B, T, C, H, W) -> (B, T), in dB.

    Frames become ``uint8(clip(x, 0, 1) * 255)`` (truncation, as ``np.uint8``); identical frames
    give ``PSNR_CAP``.
    """
    check_frames(pred, true)
    return _psnr(_levels(pred.double()), _levels(true.double()))


def _events(x: Tensor, thresholds: Sequence[float], dtype: torch.dtype) -> Tensor:
    """``x >= threshold`` per threshold, the thresholds in ``dtype``: (K, B, T, C, H, W)."""
    thr = torch.as_tensor(list(thresholds), dtype=dtype, device=x.device)
    return x.unsqueeze(0) >= thr.view(-1, 1, 1, 1, 1, 1)


def _counts(pred_events: Tensor, true_events: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    pe, te, dims = pred_events, true_events, (1, 3, 4, 5)
    hits = (pe & te).sum(dims).double()
    misses = (~pe & te).sum(dims).double()
    false_alarms = (pe & ~te).sum(dims).double()
    return hits, misses, false_alarms


def contingency_counts(
    pred: Tensor, true: Tensor, thresholds: Sequence[float]
) -> tuple[Tensor, Tensor, Tensor]:
    """Hits, misses, false alarms per threshold and frame, summed over B, C, H, W.

    Event: ``value >= threshold``. Returns three float64 tensors of shape (K, T).
    """
    check_frames(pred, true)
    return _counts(_events(pred, thresholds, pred.dtype), _events(true, thresholds, pred.dtype))


def _repeats_one_frame(frames: Tensor) -> bool:
    """Whether every lead time holds the same frame (persistence): exact equality."""
    return frames.shape[1] > 1 and bool((frames[:, 1:] == frames[:, :1]).all())


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(num, math.nan))


@dataclass(frozen=True)
class Truth:
    """One batch's truth made ready for scoring any number of forecasts against it
    (``FrameMetrics.prepare``): what the metrics take from the truth alone, computed once."""

    source: Tensor  # as given, to prepare again for forecasts of another dtype
    frames: Tensor  # (B, T, C, H, W) in the dtype the forecasts are scored in
    settings: tuple  # those of the FrameMetrics that prepared it
    units: Tensor | None  # to_units(frames), float64
    moments: tuple[Moments, ...]  # under each SSIM window, of the frames rescaled to [0, 1]
    levels: Tensor  # PSNR's 8-bit levels
    events: Tensor | None  # (K, B, T, C, H, W): frames >= each threshold


class FrameMetrics:
    """Accumulates per-frame metric sums over batches; see the module docstring for conventions.

    ``state()`` returns float64 tensors (sums and ``count``, each of shape (T,), contingency
    counts of shape (K, T)) that can be all-reduced, e.g. ``m.reduce(dist.all_reduce)``, or
    merged with ``merge(other.state())``. Pass ``n_frames`` so that a rank without data still
    holds state tensors of the right shape. Several forecasts of one truth (a model and the
    baselines) share the truth's part of the work: ``truth = m.prepare(true)``, then
    ``update(pred, truth)`` on each FrameMetrics of the same settings.
    """

    def __init__(
        self,
        data_range: tuple[float, float] = (0.0, 1.0),
        to_units: Callable[[Tensor], Tensor] | None = None,
        thresholds: Sequence[float] = (),
        legacy_ssim: bool = True,
        threshold_units: str = "model",
        n_frames: int | None = None,
    ) -> None:
        lo, hi = float(data_range[0]), float(data_range[1])
        if not hi > lo:
            raise ConfigError(f"data_range must be (low, high) with high > low; got {data_range}")
        if threshold_units not in ("model", "data"):
            raise ConfigError(f"threshold_units must be 'model' or 'data'; got {threshold_units!r}")
        if threshold_units == "data" and to_units is None:
            raise ConfigError("threshold_units='data' needs a to_units callable")
        self.data_range = (lo, hi)
        self.to_units = to_units
        self.thresholds = tuple(float(t) for t in thresholds)
        self.legacy_ssim = legacy_ssim
        self.threshold_units = threshold_units
        self.windows = (GAUSSIAN, LEGACY) if legacy_ssim else (GAUSSIAN,)
        self._state: dict[str, Tensor] = {}
        if n_frames is not None:
            self._init_state(int(n_frames), torch.device("cpu"))

    def sum_names(self) -> list[str]:
        names = list(_SUM_NAMES)
        if self.to_units is not None:
            names += ["mse_units", "mae_units"]
        names += ["ssim"] + (["ssim_legacy"] if self.legacy_ssim else []) + ["psnr"]
        return names

    def _init_state(self, t: int, device: torch.device) -> None:
        z = dict(dtype=torch.float64, device=device)
        self._state = {n: torch.zeros(t, **z) for n in ["count", *self.sum_names()]}
        if self.thresholds:
            k = len(self.thresholds)
            for n in ("hits", "misses", "false_alarms"):
                self._state[n] = torch.zeros(k, t, **z)

    def _settings(self) -> tuple:
        return (self.data_range, self.to_units, self.thresholds, self.legacy_ssim,
                self.threshold_units)  # fmt: skip

    def _unit(self, frames: Tensor) -> Tensor:
        """Frames rescaled from data_range to [0, 1], as float64."""
        lo, hi = self.data_range
        return ((frames - lo) / (hi - lo)).double()

    def _thresholded(self, frames: Tensor) -> Tensor:
        """What the thresholds apply to: the frames, or their data units."""
        return self.to_units(frames) if self.threshold_units == "data" else frames

    @torch.no_grad()
    def prepare(self, true: Tensor, dtype: torch.dtype | None = None) -> Truth:
        """``true`` (B, T, C, H, W) in model units made ready for ``update`` of forecasts of
        ``dtype`` (default: the truth's own, float32 or float64), on any FrameMetrics of these
        settings."""
        if true.ndim != 5:
            raise DataError(
                f"metrics expect true of shape (B, T, C, H, W); got {tuple(true.shape)}"
            )
        frames = _as_float(true).to(dtype or _as_float(true).dtype)
        unit = self._unit(frames)
        units = self.to_units(frames).double() if self.to_units is not None else None
        events = None
        if self.thresholds:
            values = self._thresholded(frames)
            events = _events(values, self.thresholds, values.dtype)
        windows = moments(unit, self.windows)
        return Truth(true, frames, self._settings(), units, windows, _levels(unit), events)

    def _truth_for(self, true: Tensor | Truth, dtype: torch.dtype) -> Truth:
        if isinstance(true, Tensor):
            return self.prepare(true, dtype)
        if true.settings != self._settings():
            raise DataError(
                "this Truth was prepared by a FrameMetrics of other settings (data_range, "
                "to_units, thresholds, legacy_ssim, threshold_units): prepare it with these"
            )
        return true if true.frames.dtype == dtype else self.prepare(true.source, dtype)

    def _errors(self, pred: Tensor, truth: Truth) -> dict[str, Tensor]:
        """MSE and MAE sums per sequence and frame, (B, T) each."""
        npix = pred[0, 0].numel()
        diff = (pred - truth.frames).double()
        sums = {
            "mse": diff.pow(2).sum(dim=(2, 3, 4)),  # (B, T)
            "mae": diff.abs().sum(dim=(2, 3, 4)),
        }
        sums["mse_pixel"], sums["mae_pixel"] = sums["mse"] / npix, sums["mae"] / npix
        if truth.units is not None:
            du = self.to_units(pred).double() - truth.units
            sums["mse_units"] = du.pow(2).mean(dim=(2, 3, 4))
            sums["mae_units"] = du.abs().mean(dim=(2, 3, 4))
        return sums

    def _similarity(self, pred: Tensor, truth: Truth) -> dict[str, Tensor]:
        """SSIM (both windows) and PSNR per sequence and frame, (B, T) each."""
        # a forecast repeating one frame (persistence) needs it once per sequence: the
        # (B, 1, ...) tensors broadcast against the truth's (B, T, ...)
        unit = self._unit(pred[:, :1] if _repeats_one_frame(pred) else pred)
        scores = ssim_of(moments(unit, self.windows), truth.moments, self.windows)
        sums = dict(zip(("ssim", "ssim_legacy"), scores, strict=False))
        sums["psnr"] = _psnr(_levels(unit), truth.levels)
        return sums

    @torch.no_grad()
    def update(self, pred: Tensor, true: Tensor | Truth) -> None:
        """Add one batch; pred (B, T, C, H, W) in model units, true the same or its ``Truth``
        from ``prepare`` (shared by several forecasts of one truth)."""
        check_frames(pred, true.frames if isinstance(true, Truth) else true)
        t = pred.shape[1]
        if not self._state:
            self._init_state(t, pred.device)
        elif self._state["count"].shape[0] != t:
            raise DataError(
                f"batch has {t} frames, earlier batches had {self._state['count'].shape[0]}"
            )
        lo, hi = self.data_range
        pred = _as_float(pred).clamp(lo, hi)  # (B, T, C, H, W)
        truth = self._truth_for(true, pred.dtype)
        dev = self._state["count"].device
        for name, v in (self._errors(pred, truth) | self._similarity(pred, truth)).items():
            self._state[name] += v.double().sum(0).to(dev)
        self._state["count"] += pred.shape[0]
        if self.thresholds:
            values = self._thresholded(pred)
            counts = _counts(_events(values, self.thresholds, values.dtype), truth.events)
            for name, v in zip(("hits", "misses", "false_alarms"), counts, strict=True):
                self._state[name] += v.to(dev)

    def state(self) -> dict[str, Tensor]:
        """The float64 sum tensors (live references; copy before changing them)."""
        return self._state

    def load_state(self, state: dict[str, Tensor]) -> None:
        """Replace the sums with ``state`` (copied)."""
        self._state = {k: v.detach().clone().double() for k, v in state.items()}

    def merge(self, other_state: dict[str, Tensor]) -> None:
        """Add another accumulator's ``state()`` to this one."""
        if not other_state:
            return
        if not self._state:
            self.load_state(other_state)
            return
        if set(other_state) != set(self._state):
            raise DataError(f"cannot merge metric states with keys {sorted(other_state)}")
        for k, v in other_state.items():
            if v.shape != self._state[k].shape:
                raise DataError(f"cannot merge metric '{k}' of shape {tuple(v.shape)}")
            self._state[k] += v.to(self._state[k])

    def reduce(self, fn: Callable[[Tensor], Any]) -> None:
        """Apply ``fn`` in place to every sum tensor, in sorted key order (same on all ranks)."""
        for k in sorted(self._state):
            fn(self._state[k])

    def compute(self) -> dict[str, Any]:
        """Returns ``{"n_sequences", "n_frames", "per_frame": {name: [T floats]},
        "mean": {name: float}}``; means are over frames (pooled counts for csi/pod/far)."""
        if not self._state or float(self._state["count"].max()) == 0:
            raise DataError("no data: call update() before compute()")
        count = self._state["count"].clamp(min=1)
        per_frame: dict[str, Tensor] = {n: self._state[n] / count for n in self.sum_names()}
        mean = {n: float(v.mean()) for n, v in per_frame.items()}
        if self.thresholds:
            h, m, f = (self._state[n] for n in ("hits", "misses", "false_alarms"))
            hs, ms, fs = h.sum(1), m.sum(1), f.sum(1)  # pooled over frames, (K,)
            for i, thr in enumerate(self.thresholds):
                ratios = {
                    "csi": (h[i], h[i] + m[i] + f[i], hs[i], hs[i] + ms[i] + fs[i]),
                    "pod": (h[i], h[i] + m[i], hs[i], hs[i] + ms[i]),
                    "far": (f[i], h[i] + f[i], fs[i], hs[i] + fs[i]),
                }
                for name, (num, den, pnum, pden) in ratios.items():
                    key = f"{name}@{thr:g}"
                    per_frame[key] = _ratio(num, den)
                    mean[key] = float(_ratio(pnum, pden))
        return {
            "n_sequences": int(self._state["count"][0]),
            "n_frames": int(count.shape[0]),
            "per_frame": {k: [float(x) for x in v.cpu()] for k, v in per_frame.items()},
            "mean": mean,
        }


def evaluate(pred: Tensor, true: Tensor, **kwargs: Any) -> dict[str, Any]:
    """One-shot ``FrameMetrics(**kwargs)`` over a single (B, T, C, H, W) batch."""
    m = FrameMetrics(**kwargs)
    m.update(pred, true)
    return m.compute()


def _json_ready(x: Any) -> Any:
    """Nested results with NaN as None (JSON null)."""
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


# what an evaluation adds to compute()'s result for metrics.json (evaluation/skill.py)
COMPARISON_KEYS = ("verdict", "baselines", "baselines_left_out")


def _csv_columns(result: dict[str, Any]) -> dict[str, list[float]]:
    """Per-frame columns: the metrics, then each baseline's MSE and the skill against it."""
    columns = dict(result["per_frame"])
    for name, b in result.get("baselines", {}).items():
        columns[f"mse_{name}"], columns[f"skill_{name}"] = b["per_frame"]["mse"], b["skill"]
    return columns


def write_metrics(
    result: dict[str, Any], json_path: str | Path | None = None, csv_path: str | Path | None = None
) -> None:
    """Write ``compute()``'s result: JSON (per-frame arrays and means, and the comparison with
    the baselines where the result has one; NaN as null) and/or CSV (header
    ``frame,<metric>,...,mse_<baseline>,skill_<baseline>``, one row per predicted frame,
    frames numbered from 1)."""
    if json_path is not None:
        p = Path(json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        keys = ("n_sequences", "n_frames", "mean", "per_frame", *COMPARISON_KEYS)
        out = _json_ready({k: result[k] for k in keys if k in result})
        p.write_text(json.dumps(out, indent=2) + "\n")
    if csv_path is not None:
        p = Path(csv_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        columns = _csv_columns(result)
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", *columns])
            for i in range(result["n_frames"]):
                w.writerow([i + 1, *(repr(float(v[i])) for v in columns.values())])


def format_table(result: dict[str, Any], metrics: Sequence[str] | None = None) -> str:
    """Fixed-width table: one row per predicted frame and a final ``mean`` row."""
    names = list(metrics) if metrics is not None else list(result["per_frame"])
    width = max(10, *(len(n) + 1 for n in names))
    head = f"{'frame':>6}" + "".join(f"{n:>{width}}" for n in names)
    rows = [head, "-" * len(head)]
    for i in range(result["n_frames"]):
        vals = "".join(f"{result['per_frame'][n][i]:>{width}.5g}" for n in names)
        rows.append(f"{i + 1:>6}" + vals)
    rows.append("-" * len(head))
    rows.append(f"{'mean':>6}" + "".join(f"{result['mean'][n]:>{width}.5g}" for n in names))
    return "\n".join(rows)
