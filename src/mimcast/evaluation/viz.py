"""Figures and animations: frame-wise metric curves, truth/prediction strips, difference maps, GIFs.

Matplotlib is imported lazily and drawn through an explicit Agg canvas (no pyplot, no global
backend change); GIFs are written with Pillow. Frame inputs are numpy arrays or torch tensors of
shape (T, C, H, W) (or (T, H, W)), in a value range ``vrange`` (default (0, 1)). Channel choice:
``channel=None`` shows RGB for 3-channel frames and channel 0 otherwise; an int picks a channel
shown in grayscale. Every function writes only ``path`` (its parent folder is created) and
returns it as a ``Path``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimcast.errors import ConfigError, DataError

ArrayLike = Any  # numpy.ndarray or torch.Tensor


def _frames(x: ArrayLike, name: str) -> np.ndarray:
    """To a float64 numpy array (T, C, H, W)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DataError(f"{name} must have shape (T, C, H, W) or (T, H, W); got {a.shape}")
    return a


def _pick(a: np.ndarray, channel: int | None) -> np.ndarray:
    """(T, C, H, W) -> (T, H, W) for one channel or (T, H, W, 3) for RGB."""
    c = a.shape[1]
    if channel is None:
        return a.transpose(0, 2, 3, 1) if c == 3 else a[:, 0]
    if not -c <= channel < c:
        raise ConfigError(f"channel {channel} out of range for {c} channel(s)")
    return a[:, channel]


def _unit(a: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    lo, hi = float(vrange[0]), float(vrange[1])
    if not hi > lo:
        raise ConfigError(f"vrange must be (low, high) with high > low; got {vrange}")
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _uint8(a: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    return np.round(_unit(a, vrange) * 255).astype(np.uint8)


def _target(path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure drawn through its own Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path, dpi: int) -> Path:
    """Write `fig` as PNG to `path` (its folder is created); returns the path."""
    p = _target(path)
    fig.savefig(p, dpi=dpi, format="png")
    return p


def _index(n: int, every: int, max_frames: int, last: bool = False) -> list[int]:
    if every < 1 or max_frames < 1:
        raise ConfigError("every and max_frames must be >= 1")
    idx = list(range(n - 1, -1, -every))[::-1] if last else list(range(0, n, every))
    return idx[-max_frames:] if last else idx[:max_frames]


def plot_framewise(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    metric: str,
    path: str | Path,
    *,
    title: str | None = None,
    dpi: int = 120,
    reference: float | None = None,
) -> Path:
    """Frame-wise curve of ``metric``, one line per label (the paper's Figures 4-5).

    ``curves[label][metric]`` is the per-frame list (e.g. ``FrameMetrics.compute()["per_frame"]``);
    the x axis is the predicted frame index 1..T; ``reference`` draws a dashed level line.
    """
    if not curves:
        raise ConfigError("plot_framewise needs at least one curve")
    fig = figure((6, 4))
    ax = fig.add_subplot()
    for label, per_frame in curves.items():
        if metric not in per_frame:
            raise ConfigError(f"metric '{metric}' missing for '{label}'; has {sorted(per_frame)}")
        ys = [float("nan") if v is None else float(v) for v in per_frame[metric]]
        ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=3, label=label)
    if reference is not None:
        ax.axhline(reference, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted frame")
    ax.set_ylabel(metric)
    ax.set_title(title or f"frame-wise {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def save_strip(
    context: ArrayLike | None,
    true: ArrayLike | None,
    pred: ArrayLike,
    path: str | Path,
    *,
    every: int = 1,
    max_frames: int = 20,
    channel: int | None = None,
    vrange: tuple[float, float] = (0.0, 1.0),
    dpi: int = 100,
) -> Path:
    """Ground truth vs prediction strip PNG (the paper's Figures 6 and 8).

    Row 1: context frames then true future frames; row 2: predictions under the true frames.
    ``true=None`` (a forecast without ground truth) leaves the future part of row 1 empty.
    ``every`` subsamples frames; at most ``max_frames`` future frames and as many of the last
    context frames are shown. Frames are labelled with their 1-based time index.
    """
    t_pred = _frames(pred, "pred")
    known = true is not None
    t_true = _frames(true, "true") if known else np.zeros_like(t_pred)
    if t_true.shape != t_pred.shape:
        raise DataError(f"true {t_true.shape} and pred {t_pred.shape} differ in shape")
    ctx = _frames(context, "context") if context is not None else t_true[:0]
    if ctx.shape[1:] != t_true.shape[1:]:
        raise DataError(f"context frames {ctx.shape[1:]} differ from target {t_true.shape[1:]}")
    ci = _index(len(ctx), every, max_frames, last=True)
    fi = _index(len(t_true), every, max_frames)
    ctx_img = _unit(_pick(ctx, channel), vrange)
    true_img, pred_img = (_unit(_pick(a, channel), vrange) for a in (t_true, t_pred))
    ncol = len(ci) + len(fi)
    fig = figure((1.1 * ncol + 0.8, 2.6))
    axes = fig.subplots(2, ncol, squeeze=False)
    show = dict(cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    for j, i in enumerate(ci):
        axes[0, j].imshow(ctx_img[i], **show)
        axes[0, j].set_title(f"t={i + 1}", fontsize=7)
    for j, i in enumerate(fi, start=len(ci)):
        if known:
            axes[0, j].imshow(true_img[i], **show)
        axes[1, j].imshow(pred_img[i], **show)
        axes[0, j].set_title(f"t={len(ctx) + i + 1}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.has_data():
            ax.set_axis_off()
    axes[0, 0].set_ylabel("truth", fontsize=8)
    axes[1, len(ci)].set_ylabel("prediction", fontsize=8)
    fig.subplots_adjust(left=0.04, right=0.99, top=0.85, bottom=0.03, wspace=0.05, hspace=0.1)
    return save_figure(fig, path, dpi)


def save_diff_maps(
    true: ArrayLike,
    pred: ArrayLike,
    path: str | Path,
    *,
    channel: int | None = None,
    channel_names: Sequence[str] | None = None,
    every: int = 1,
    max_frames: int = 20,
    vmax: float | None = None,
    cmap: str = "viridis",
    dpi: int = 100,
) -> Path:
    """Difference maps ``|pred - true|`` per frame with a shared colorbar (TaxiBJ, Figure 9).

    Rows are channels (all of them, or only ``channel``), columns predicted frames; values are in
    the inputs' units (convert first for data units). ``vmax`` defaults to the largest difference.
    """
    t_true, t_pred = _frames(true, "true"), _frames(pred, "pred")
    if t_true.shape != t_pred.shape:
        raise DataError(f"true {t_true.shape} and pred {t_pred.shape} differ in shape")
    diff = np.abs(t_pred - t_true)  # (T, C, H, W)
    chans = list(range(diff.shape[1])) if channel is None else [channel]
    if any(not -diff.shape[1] <= c < diff.shape[1] for c in chans):
        raise ConfigError(f"channel {channel} out of range for {diff.shape[1]} channel(s)")
    fi = _index(len(diff), every, max_frames)
    top = float(vmax) if vmax is not None else float(diff[fi][:, chans].max(initial=0.0))
    top = top if top > 0 else 1.0
    fig = figure((1.2 * len(fi) + 1.4, 1.3 * len(chans) + 0.5))
    axes = fig.subplots(len(chans), len(fi), squeeze=False)
    im = None
    for r, c in enumerate(chans):
        for j, i in enumerate(fi):
            ax = axes[r, j]
            im = ax.imshow(diff[i, c], cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={i + 1}", fontsize=7)
        name = channel_names[c] if channel_names is not None else f"ch {c}"
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.88, top=0.85, bottom=0.05, wspace=0.05, hspace=0.1)
    cax = fig.add_axes((0.9, 0.1, 0.02, 0.7))
    fig.colorbar(im, cax=cax, label="|pred - true|")
    return save_figure(fig, path, dpi)


def _gif(images: list[np.ndarray], path: str | Path, fps: float, scale: int) -> Path:
    from PIL import Image

    if fps <= 0 or scale < 1:
        raise ConfigError("fps must be > 0 and scale >= 1")
    if not images:
        raise DataError("no frames to write")
    pil = []
    for a in images:
        img = Image.fromarray(np.ascontiguousarray(a))  # uint8: (H, W) -> L, (H, W, 3) -> RGB
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        pil.append(img)
    p = _target(path)
    # Pillow merges consecutive identical frames (durations add up, so playback time is kept).
    pil[0].save(
        p, format="GIF", save_all=True, append_images=pil[1:], duration=round(1000 / fps), loop=0
    )
    return p


def save_gif(
    frames: ArrayLike,
    path: str | Path,
    fps: float = 4,
    vrange: tuple[float, float] = (0.0, 1.0),
    *,
    channel: int | None = None,
    scale: int = 1,
) -> Path:
    """Animated GIF of (T, C, H, W) frames; ``scale`` enlarges with nearest-neighbour."""
    imgs = _uint8(_pick(_frames(frames, "frames"), channel), vrange)
    return _gif(list(imgs), path, fps, scale)


def save_comparison_gif(
    true: ArrayLike,
    pred: ArrayLike,
    path: str | Path,
    fps: float = 4,
    vrange: tuple[float, float] = (0.0, 1.0),
    *,
    channel: int | None = None,
    scale: int = 1,
    gap: int = 2,
) -> Path:
    """Side-by-side GIF, per frame: truth | prediction, separated by ``gap`` white pixels."""
    a, b = _frames(true, "true"), _frames(pred, "pred")
    if a.shape != b.shape:
        raise DataError(f"true {a.shape} and pred {b.shape} differ in shape")
    ta, tb = _uint8(_pick(a, channel), vrange), _uint8(_pick(b, channel), vrange)
    sep = np.full((*ta.shape[:2], gap, *ta.shape[3:]), 255, dtype=np.uint8)
    both = np.concatenate([ta, sep, tb], axis=2)  # (T, H, 2W+gap[, 3])
    return _gif(list(both), path, fps, scale)
