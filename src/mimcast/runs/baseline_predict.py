"""The trivial forecasts as files, with no run folder: `mimcast predict --method persistence|flow`.

The context is read by predict's own formats code (formats.read_context): an array (T, C, H, W)
or (N, T, C, H, W), a video or image folder at its own frame size (gray clips as 1 channel,
others as 3), or a netCDF/Zarr/HDF5 variable. The forecast is in the input's own units
(pixels 0-255 for videos), its values spanning the context's range, and goes to every output
predict writes (--output in any of its formats, --gif, --png), all of them or none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimcast.data import DataSpec
from mimcast.data.video import IMAGE_EXT, VIDEO_EXT
from mimcast.errors import DataError
from mimcast.evaluation.baselines import baseline_named
from mimcast.runs import formats
from mimcast.runs.predict import PredictRequest, write_outputs

# frames of a video or a netCDF/Zarr series kept as the context: the --png strip shows them
CONTEXT_FRAMES = 10
PIXELS = (0.0, 255.0)


def predict_baseline(method: str, request: PredictRequest) -> np.ndarray:
    """Forecast with the baseline `method` from the request's context alone; write every
    output; returns the forecast in the input's layout and units."""
    baseline = baseline_named(method)
    request.check()
    where = Path(request.input_path)
    context = formats.read_context(
        where, _reading_spec(where), request.variable, fit=request.video_fit
    )
    formats.check_writable(request.outputs["output"], context)
    batch = _checked(context.frames, where, baseline.min_context)
    vrange = PIXELS if context.kind == "video" else _span(batch)
    pred = np.clip(baseline.forecast(batch, request.horizon, vrange).frames, *vrange)
    result = (pred[0] if context.frames.ndim == 4 else pred).astype(np.float32)
    label = "pixel intensity 0-255" if context.kind == "video" else "as the input's"
    pictures = {"context": batch[0], "first": pred[0], "vrange": vrange}
    write_outputs(request.outputs, result, context, formats.Units(label, vrange), pictures)
    return result


def _is_clip(path: Path) -> bool:
    """Whether read_context reads `path` as a video or a folder of images (its own rule)."""
    ext = path.suffix.lower()
    return ext in VIDEO_EXT or (path.is_dir() and ext not in formats.XARRAY)


def _reading_spec(path: Path) -> DataSpec:
    """What read_context needs to know without a model: the frames to keep, and for a clip
    its own frame shape (so that nothing is resized)."""
    shape = _clip_shape(path) if path.exists() and _is_clip(path) else (1, 1, 1)
    return DataSpec(frame_shape=shape, value_range=(0.0, 1.0), units="", scale=(1.0,),
                    offset=(0.0,), context_len=CONTEXT_FRAMES)  # fmt: skip


def _clip_shape(path: Path) -> tuple[int, int, int]:
    """(C, H, W) of a clip's frames as they are, from its first frame: 1 channel where it is
    gray (a gray clip's codec stores colour planes all the same), else 3."""
    first = _first_frame(path)
    spread = int(np.ptp(first.astype(np.int16), axis=-1).max()) if first.shape[-1] > 1 else 0
    return (1 if spread <= 2 else 3, *first.shape[:2])  # lossy chroma: off by one or two


def _first_frame(path: Path) -> np.ndarray:
    """(H, W, C) uint8: the first frame of a video or of a folder of images."""
    if path.is_dir():
        from PIL import Image

        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXT)
        if not images:
            raise DataError(f"{path}: no image frames ({', '.join(sorted(IMAGE_EXT))}) in it")
        try:
            with Image.open(images[0]) as img:
                return np.atleast_3d(np.asarray(img.convert("RGB")))
        except OSError as e:
            raise DataError(f"{images[0]}: cannot read the image ({e})") from e
    import av

    try:
        with av.open(str(path)) as container:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError, StopIteration) as e:
        raise DataError(f"{path}: cannot decode the video ({e})") from e


def _checked(frames: np.ndarray, where: Path, min_context: int) -> np.ndarray:
    """(N, T, C, H, W) float64 of a context a baseline can forecast from, or a DataError."""
    if frames.ndim not in (4, 5) or 0 in frames.shape:
        raise DataError(
            f"{where}: context must be (T, C, H, W) or (N, T, C, H, W), got shape {frames.shape}"
        )
    if not np.issubdtype(frames.dtype, np.number) or np.iscomplexobj(frames):
        raise DataError(f"{where}: dtype {frames.dtype} is not real numbers")
    batch = (frames[None] if frames.ndim == 4 else frames).astype(np.float64)
    if not np.isfinite(batch).all():
        raise DataError(f"{where}: the context holds NaN or inf values")
    if batch.shape[1] < min_context:
        raise DataError(f"{where}: the context has {batch.shape[1]} frame(s), this method "
                        f"needs {min_context}")  # fmt: skip
    return batch


def _span(batch: np.ndarray) -> tuple[float, float]:
    """The context's value range (a constant context: a range of 1 above its value)."""
    lo, hi = float(batch.min()), float(batch.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
