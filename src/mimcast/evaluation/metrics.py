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
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mimcast.errors import ConfigError, DataError

PSNR_CAP = 100.0
_SUM_NAMES = ("mse", "mae", "mse_pixel", "mae_pixel")


def _check(pred: Tensor, true: Tensor) -> None:
    if pred.ndim != 5 or pred.shape != true.shape:
        raise DataError(
            f"metrics expect pred and true of the same shape (B, T, C, H, W); "
            f"got {tuple(pred.shape)} and {tuple(true.shape)}"
        )


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _band(kernel: Tensor, n: int) -> Tensor:
    """(n-k+1, n) matrix whose row i holds ``kernel`` at columns i..i+k-1 (valid correlation)."""
    k = kernel.numel()
    band = torch.zeros(n - k + 1, n, dtype=torch.float64)
    for j in range(k):
        band.diagonal(j).fill_(float(kernel[j]))
    return band


def _ssim_valid(
    pred: Tensor, true: Tensor, kernel: Tensor, data_range: float, cov_norm: float
) -> Tensor:
    """Mean SSIM map over the valid region (skimage's crop of (win-1)/2) per frame, channels
    averaged. ``kernel`` is a normalised 1-D window applied separably. (B,T,C,H,W) -> (B,T)."""
    _check(pred, true)
    b, t, c, h, w = pred.shape
    k = kernel.numel()
    if h < k or w < k:
        raise DataError(f"frames of {h}x{w} are smaller than the SSIM window {k}")
    x = pred.double().reshape(b * t * c, 1, h, w)
    y = true.double().reshape(b * t * c, 1, h, w)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B*T*C, 5, H, W)
    # separable valid filtering as banded matrices: float64 matmul is much faster than conv2d
    bh, bw = _band(kernel, h).to(stack), _band(kernel, w).to(stack)
    m = bh @ stack @ bw.T  # (B*T*C, 5, H-k+1, W-k+1)
    ux, uy, uxx, uyy, uxy = m.unbind(1)
    vx, vy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1)).reshape(b, t, c).mean(-1)


def ssim_frames(pred: Tensor, true: Tensor, sigma: float = 1.5) -> Tensor:
    """Gaussian SSIM (Wang et al. 2004) per frame of frames in [0, 1]: (B,T,C,H,W) -> (B,T).

    Window of 11 taps (radius int(3.5*sigma+0.5)), population covariance, data_range 1, mean over
    the valid region; equals ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``. torchmetrics 1.9 uses the same map but
    averages it over the reflect-padded full image (no border crop), which differs by up to ~0.02
    on sparse digit frames. Channels are averaged. Computed in float64.
    """
    r = int(3.5 * sigma + 0.5)
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    return _ssim_valid(pred, true, g / g.sum(), data_range=1.0, cov_norm=1.0)


def ssim_legacy_frames(
    pred: Tensor, true: Tensor, data_range: float = 2.0, win_size: int = 7
) -> Tensor:
    """Legacy scikit-image ``compare_ssim`` defaults per frame: (B, T, C, H, W) -> (B, T).

    Uniform ``win_size`` window, sample covariance (N/(N-1)), ``data_range`` 2 (old skimage's
    float default); only the valid region (border of (win-1)/2 cropped) is averaged, as skimage
    does; channels are averaged. Computed in float64.
    """
    n = win_size * win_size
    box = torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)
    return _ssim_valid(pred, true, box, data_range=data_range, cov_norm=n / (n - 1))


def psnr_frames(pred: Tensor, true: Tensor) -> Tensor:
    """TF MIM/PredRNN PSNR per frame of frames in [0, 1]: (B, T, C, H, W) -> (B, T), in dB.

    Frames become ``uint8(clip(x, 0, 1) * 255)`` (truncation, as ``np.uint8``); identical frames
    give ``PSNR_CAP``.
    """
    _check(pred, true)
    p = torch.floor(pred.double().clamp(0, 1) * 255)
    y = torch.floor(true.double().clamp(0, 1) * 255)
    mse = (p - y).pow(2).mean(dim=(2, 3, 4))  # (B, T)
    psnr = 20 * math.log10(255.0) - 10 * torch.log10(mse)
    return psnr.clamp(max=PSNR_CAP)


def contingency_counts(
    pred: Tensor, true: Tensor, thresholds: Sequence[float]
) -> tuple[Tensor, Tensor, Tensor]:
    """Hits, misses, false alarms per threshold and frame, summed over B, C, H, W.

    Event: ``value >= threshold``. Returns three float64 tensors of shape (K, T).
    """
    _check(pred, true)
    thr = torch.as_tensor(list(thresholds), dtype=pred.dtype, device=pred.device)
    thr = thr.view(-1, 1, 1, 1, 1, 1)  # (K, 1, 1, 1, 1, 1)
    pe, te = pred.unsqueeze(0) >= thr, true.unsqueeze(0) >= thr  # (K, B, T, C, H, W)
    dims = (1, 3, 4, 5)
    hits = (pe & te).sum(dims).double()
    misses = (~pe & te).sum(dims).double()
    false_alarms = (pe & ~te).sum(dims).double()
    return hits, misses, false_alarms


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(num, math.nan))


class FrameMetrics:
    """Accumulates per-frame metric sums over batches; see the module docstring for conventions.

    ``state()`` returns float64 tensors (sums and ``count``, each of shape (T,), contingency
    counts of shape (K, T)) that can be all-reduced, e.g. ``m.reduce(dist.all_reduce)``, or
    merged with ``merge(other.state())``. Pass ``n_frames`` so that a rank without data still
    holds state tensors of the right shape.
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

    @torch.no_grad()
    def update(self, pred: Tensor, true: Tensor) -> None:
        """Add one batch; pred, true: (B, T, C, H, W) in model units."""
        _check(pred, true)
        t = pred.shape[1]
        if not self._state:
            self._init_state(t, pred.device)
        elif self._state["count"].shape[0] != t:
            raise DataError(
                f"batch has {t} frames, earlier batches had {self._state['count'].shape[0]}"
            )
        lo, hi = self.data_range
        pred = _as_float(pred).clamp(lo, hi)  # (B, T, C, H, W)
        true = _as_float(true).to(pred.dtype)
        dev = self._state["count"].device
        npix = pred[0, 0].numel()
        diff = (pred - true).double()
        sums = {
            "mse": diff.pow(2).sum(dim=(2, 3, 4)),  # (B, T)
            "mae": diff.abs().sum(dim=(2, 3, 4)),
        }
        sums["mse_pixel"], sums["mae_pixel"] = sums["mse"] / npix, sums["mae"] / npix
        if self.to_units is not None:
            du = self.to_units(pred).double() - self.to_units(true).double()
            sums["mse_units"] = du.pow(2).mean(dim=(2, 3, 4))
            sums["mae_units"] = du.abs().mean(dim=(2, 3, 4))
        p01, t01 = (pred - lo) / (hi - lo), (true - lo) / (hi - lo)  # frames in [0, 1]
        sums["ssim"] = ssim_frames(p01, t01)
        if self.legacy_ssim:
            sums["ssim_legacy"] = ssim_legacy_frames(p01, t01)
        sums["psnr"] = psnr_frames(p01, t01)
        for name, v in sums.items():
            self._state[name] += v.double().sum(0).to(dev)
        self._state["count"] += pred.shape[0]
        if self.thresholds:
            if self.threshold_units == "data":
                pred, true = self.to_units(pred), self.to_units(true)
            for name, v in zip(
                ("hits", "misses", "false_alarms"),
                contingency_counts(pred, true, self.thresholds),
                strict=True,
            ):
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
