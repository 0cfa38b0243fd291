"""SSIM as the evaluation computes it: local moments under a window, then the SSIM map's mean
over the valid region (skimage's crop of (win-1)/2), per frame, channels averaged.

The moments of a frame stack (its local mean and mean square under a window) are kept apart from
the map so that what comes from one side only is computed once: the truth's moments serve every
forecast scored against it, and a forecast that repeats one frame at every lead time
(persistence) needs its moments once per sequence, broadcast over the lead times. Every tensor
keeps the (B, T, C, ...) layout, so such a (B, 1, C, ...) stack broadcasts where (B, T, C, ...)
is expected. Computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from mimcast.errors import DataError


@dataclass(frozen=True)
class Window:
    """A normalised 1-D window applied separably, with the SSIM constants it is used with."""

    taps: tuple[float, ...]
    data_range: float
    cov_norm: float  # 1 (population covariance) or N / (N - 1) (sample covariance)

    @property
    def size(self) -> int:
        return len(self.taps)


def gaussian_window(sigma: float = 1.5) -> Window:
    """skimage's Gaussian window: radius int(3.5 sigma + 0.5), population covariance,
    data_range 1."""
    r = int(3.5 * sigma + 0.5)
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    return Window(tuple((g / g.sum()).tolist()), data_range=1.0, cov_norm=1.0)


def box_window(win_size: int = 7, data_range: float = 2.0) -> Window:
    """Old skimage ``compare_ssim``'s uniform window, sample covariance."""
    n = win_size * win_size
    return Window((1.0 / win_size,) * win_size, data_range=data_range, cov_norm=n / (n - 1))


GAUSSIAN = gaussian_window(1.5)  # the ``ssim`` metric's window
LEGACY = box_window(7, 2.0)  # the ``ssim_legacy`` metric's window


def check_frames(pred: Tensor, true: Tensor) -> None:
    """pred and true: tensors of one (B, T, C, H, W) shape."""
    if pred.ndim != 5 or pred.shape != true.shape:
        raise DataError(
            f"metrics expect pred and true of the same shape (B, T, C, H, W); "
            f"got {tuple(pred.shape)} and {tuple(true.shape)}"
        )


@lru_cache(maxsize=64)
def _band(taps: tuple[float, ...], n: int, device: torch.device) -> Tensor:
    """(n-k+1, n) matrix whose row i holds ``taps`` at columns i..i+k-1 (valid correlation)."""
    k = len(taps)
    band = torch.zeros(n - k + 1, n, dtype=torch.float64)
    for j in range(k):
        band.diagonal(j).fill_(taps[j])
    return band.to(device)


def local_mean(maps: Tensor, window: Window) -> Tensor:
    """Valid separable filtering of float64 (..., H, W) maps: (..., H-k+1, W-k+1)."""
    h, w = maps.shape[-2:]
    if h < window.size or w < window.size:
        raise DataError(f"frames of {h}x{w} are smaller than the SSIM window {window.size}")
    # banded matrices: float64 matmul is much faster than conv2d
    bh, bw = _band(window.taps, h, maps.device), _band(window.taps, w, maps.device)
    return bh @ maps @ bw.T


@dataclass(frozen=True)
class Moments:
    """Local mean, its square, and variance (with the window's covariance norm) of float64
    frames, and the frames themselves for the cross term."""

    frames: Tensor  # (B, T, C, H, W), or (B, 1, C, H, W) for a frame repeated over T
    mean: Tensor  # (B, T or 1, C, H', W')
    mean_sq: Tensor  # mean * mean
    var: Tensor


def _scaled(factor: float, x: Tensor) -> Tensor:
    return x if factor == 1.0 else factor * x  # x * 1.0 is x: the work is saved, not the value


def moments(frames: Tensor, windows: Sequence[Window]) -> tuple[Moments, ...]:
    """The local moments of float64 (B, T, C, H, W) frames under each window (the squares
    computed once for all)."""
    squares, out = frames * frames, []
    for w in windows:
        mean = local_mean(frames, w)
        mean_sq = mean * mean
        out.append(
            Moments(
                frames, mean, mean_sq, _scaled(w.cov_norm, local_mean(squares, w).sub_(mean_sq))
            )
        )
    return tuple(out)


def _ssim_map_mean(x: Moments, y: Moments, cross: Tensor, window: Window) -> Tensor:
    """The map ``(2 ux uy + c1)(2 vxy + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2))`` averaged,
    worked out in place on a few temporaries (the frames are large: every fresh tensor costs).
    """
    c1, c2 = (0.01 * window.data_range) ** 2, (0.03 * window.data_range) ** 2
    uxy = x.mean * y.mean
    vxy = _scaled(window.cov_norm, local_mean(cross, window).sub_(uxy))
    num = uxy.mul_(2).add_(c1).mul_(vxy.mul_(2).add_(c2))
    den = (x.mean_sq + y.mean_sq).add_(c1).mul_((x.var + y.var).add_(c2))
    return num.div_(den).mean(dim=(-2, -1)).mean(-1)


def ssim_of(x: Sequence[Moments], y: Sequence[Moments], windows: Sequence[Window]) -> list[Tensor]:
    """Mean SSIM over the valid region per frame, channels averaged, (B, T), under each window
    of the moments ``x`` and ``y`` (the cross products computed once for all)."""
    cross = x[0].frames * y[0].frames
    return [_ssim_map_mean(*m, cross, w) for *m, w in zip(x, y, windows, strict=True)]


def ssim_with(pred: Tensor, true: Tensor, window: Window) -> Tensor:
    """SSIM per frame of (B, T, C, H, W) frames under ``window``: (B, T)."""
    x, y = pred.double(), true.double()
    return ssim_of(moments(x, [window]), moments(y, [window]), [window])[0]


def ssim_frames(pred: Tensor, true: Tensor, sigma: float = 1.5) -> Tensor:
    """Gaussian SSIM (Wang et al. 2004) per frame of frames in [0, 1]: (B,T,C,H,W) -> (B,T).

    Window of 11 taps (radius int(3.5*sigma+0.5)), population covariance, data_range 1, mean over
    the valid region; equals ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``. torchmetrics 1.9 uses the same map but
    averages it over the reflect-padded full image (no border crop), which differs by up to ~0.02
    on sparse digit frames. Channels are averaged. Computed in float64.
    """
    check_frames(pred, true)
    return ssim_with(pred, true, gaussian_window(sigma))


def ssim_legacy_frames(
    pred: Tensor, true: Tensor, data_range: float = 2.0, win_size: int = 7
) -> Tensor:
    """Legacy scikit-image ``compare_ssim`` defaults per frame: (B, T, C, H, W) -> (B, T).

    Uniform ``win_size`` window, sample covariance (N/(N-1)), ``data_range`` 2 (old skimage's
    float default); only the valid region (border of (win-1)/2 cropped) is averaged, as skimage
    does; channels are averaged. Computed in float64.
    """
    check_frames(pred, true)
    return ssim_with(pred, true, box_window(win_size, data_range))
