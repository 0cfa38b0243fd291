"""Contexts read from, and predictions written to, the formats people keep frames in; the
file's extension says which.

    .npy / .npz                   (T, C, H, W) or (N, T, C, H, W) arrays (read safely, no pickle)
    .mp4 .avi .mov .mkv .gif ...  videos: the context is the last frames of the clip (resized to
                                  the model's frames); a forecast is written as a video or a GIF
    .nc / .zarr                   netCDF / Zarr through xarray: one variable (`variable`, or the
                                  only one) with a time dimension; the forecast keeps the input's
                                  coordinates, attributes, name and units, and continues its time
                                  coordinate by the input's own (even) step, or the one given
                                  (`time_step`) where its steps differ; without a time
                                  coordinate, from the input's length on (10 steps: 10, 11, ...)
    .h5 / .hdf5                   HDF5: one dataset (`variable`, or the only one); the forecast
                                  is written under the same name with the same attributes
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mimcast.data import DataSpec
from mimcast.data.time_axis import TimeAxis, check_time_axis, declared_step, positions
from mimcast.data.video import CODECS, VIDEO_EXT, read_frames, write_video
from mimcast.errors import DataError

ARRAYS = (".npy", ".npz")
XARRAY = (".nc", ".nc4", ".zarr")
HDF5 = (".h5", ".hdf5")
PICTURES = (".gif",)
OUTPUT_EXT = (*ARRAYS, *XARRAY, *HDF5, *CODECS, *PICTURES)
INPUT_EXT = (*ARRAYS, *XARRAY, *HDF5, *sorted(VIDEO_EXT), "a folder of images")
TIME_NAMES = ("time", "t", "frame", "valid_time")
OWNER_ATTR = "forecast_by"


@dataclass
class Context:
    """What was read: the frames (in the file's values) and what writing in kind needs."""

    frames: np.ndarray  # (T, C, H, W) or (N, T, C, H, W)
    kind: str  # "array", "video", "xarray" or "hdf5"
    meta: dict[str, Any] = field(default_factory=dict)


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def read_context(
    path: Path,
    spec: DataSpec,
    variable: str | None = None,
    fit: str = "resize",
    time_step: str | None = None,
) -> Context:
    """The context in `path`; videos (fitted to the model's frames by `fit`, resize or crop)
    and netCDF/Zarr series give their last `spec.context_len` frames. `variable` names the
    array of an .npz or the variable of netCDF/Zarr/HDF5; `time_step` the step a netCDF/Zarr
    forecast continues by where the input's steps differ."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"input file not found: {path}")
    ext = _suffix(path)
    is_video = ext in VIDEO_EXT or (path.is_dir() and ext not in XARRAY)
    _refuse_unused(path, variable=variable, time_step=time_step, video=is_video)
    if is_video:
        c, h, w = spec.frame_shape
        if c not in (1, 3):
            raise DataError(f"{path}: a video gives 1 or 3 channels, the model takes {c}")
        frames = read_frames(path, size=(h, w), fit=fit, channels=c)
        return Context(frames[-spec.context_len :], "video", {"fps": _fps(path)})
    if ext in XARRAY:
        return _read_xarray(path, variable, spec.context_len, time_step)
    if ext in HDF5:
        return _read_hdf5(path, variable)
    return Context(load_array(path, variable), "array")


def _refuse_unused(path: Path, *, variable: str | None, time_step: str | None, video: bool):
    """Options that the input's format has no use for are refused, not ignored."""
    ext = "a video" if video else f"{_suffix(path) or 'this'} input"
    if variable is not None and (video or _suffix(path) == ".npy"):
        raise DataError(f"--variable {variable}: {path} is {ext}, which holds one array, no "
                        "named ones (--variable is for .npz/netCDF/Zarr/HDF5)")  # fmt: skip
    if time_step is not None and (video or _suffix(path) not in XARRAY):
        raise DataError(f"--time-step {time_step}: {path} is {ext}, which has no time "
                        "coordinate (--time-step is for netCDF/Zarr input)")  # fmt: skip


def load_array(path: Path, key: str | None = None) -> np.ndarray:
    """A context array from .npy or .npz (`key`, the only array, or the one named 'context'),
    read safely."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    if _suffix(path) not in ARRAYS:
        raise DataError(f"{path}: cannot read a context from {_suffix(path) or 'this'} files "
                        f"({', '.join(INPUT_EXT)})")  # fmt: skip
    try:
        if _suffix(path) == ".npz":
            return _read_npz(path, key)
        return np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"cannot read {path} as a numpy array: {e}") from e


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if key is not None:
            return z[_pick(keys, key, path)]
        if "context" in keys:
            return z["context"]
        if len(keys) != 1:
            raise DataError(f"{path} holds arrays {keys}: pass --variable NAME (or name the "
                            "context array 'context')")  # fmt: skip
        return z[keys[0]]


def _fps(path: Path) -> float:
    try:
        import av

        with av.open(str(path)) as c:
            return float(c.streams.video[0].average_rate or 4)
    except Exception:  # noqa: BLE001 - a frame folder, or no rate: the default
        return 4.0


def _xarray():
    try:
        import xarray as xr
    except ImportError as e:
        raise DataError("netCDF/Zarr need xarray: pip install mimcast[formats]") from e
    return xr


def _pick(names: list[str], variable: str | None, where: Path) -> str:
    if variable is not None:
        if variable not in names:
            raise DataError(f"{where}: no variable {variable!r}; it has {', '.join(names)}")
        return variable
    if len(names) != 1:
        listed = ", ".join(names) or "none"
        raise DataError(f"{where}: {len(names)} variables ({listed}): name one with --variable")
    return names[0]


def _read_xarray(path: Path, variable: str | None, last: int, time_step: str | None) -> Context:
    xr = _xarray()
    try:
        ds = xr.open_zarr(path) if _suffix(path) == ".zarr" else xr.open_dataset(path)
    except Exception as e:  # noqa: BLE001 - xarray raises many kinds for unreadable files
        raise DataError(f"{path}: cannot open with xarray ({e})") from e
    name = _pick(sorted(str(v) for v in ds.data_vars), variable, path)
    da = ds[name]
    time = next((d for d in da.dims if str(d).lower() in TIME_NAMES), None)
    if time is None or da.ndim not in (3, 4):
        raise DataError(
            f"{path}: {name} has dims {da.dims}; it needs a time dimension and is "
            "(time, y, x) or (time, channel, y, x)"
        )
    axis = _time_axis(da, time, f"{path}: {name}", time_step)
    rest = [d for d in da.dims if d != time]
    da = da.transpose(time, *rest).isel({time: slice(-last, None)})  # the latest context
    values = np.asarray(da.values)
    frames = values if values.ndim == 4 else values[:, None]
    meta = {"da": da, "time": time, "axis": axis, "attrs": dict(ds.attrs)}
    return Context(frames, "xarray", meta)


def _time_axis(da: Any, time: str, where: str, time_step: str | None) -> TimeAxis:
    """The whole file's time axis, checked (time_axis.py): the forecast continues it."""
    if time not in da.coords:  # no coordinate: the steps are the positions 0 .. n-1
        if time_step is not None:
            raise DataError(f"--time-step {time_step}: {where} has no {time} coordinate; "
                            "its forecast's times continue its positions")  # fmt: skip
        return positions(da.sizes[time])
    times = np.asarray(da[time].values)
    fix = "pass --time-step STEP (e.g. 30min) to forecast anyway, continuing by STEP"
    axis = check_time_axis(times, where, uneven_ok=time_step is not None, fix=fix)
    return axis if time_step is None else declared_step(time_step, times, axis, where)


def _read_hdf5(path: Path, variable: str | None) -> Context:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            name = _pick(sorted(names), variable, path)
            values, attrs = np.asarray(f[name]), dict(f[name].attrs)
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from e
    if values.ndim not in (3, 4, 5):
        raise DataError(f"{path}: {name} is shaped {values.shape}; it needs (T, H, W), "
                        "(T, C, H, W) or (N, T, C, H, W)")  # fmt: skip
    frames = values[:, None] if values.ndim == 3 else values
    return Context(frames, "hdf5", {"name": name, "attrs": attrs, "squeeze": values.ndim == 3})


def check_writable(path: Path, context: Context) -> None:
    """Refuse, before any forecasting, an output `path` that cannot hold this context's
    forecast."""
    ext = _suffix(path)
    if ext not in OUTPUT_EXT:
        raise DataError(f"--output {path}: cannot write {ext or 'files without an extension'}; "
                        f"use one of {', '.join(OUTPUT_EXT)}")  # fmt: skip
    n_seq = 1 if context.frames.ndim == 4 else len(context.frames)
    if ext in XARRAY and n_seq > 1:
        raise DataError(f"--output {path}: netCDF/Zarr hold one sequence, the input has {n_seq}")
    axis = context.meta.get("axis")
    if ext in XARRAY and axis is not None and axis.step is None:
        raise DataError(f"--output {path}: the input's time axis holds one time, so the "
                        "forecast's times are unknown: pass --time-step STEP")  # fmt: skip
    if ext in CODECS and context.frames.shape[-3] not in (1, 3):
        raise DataError(f"--output {path}: a video shows 1 or 3 channels, the forecast has "
                        f"{context.frames.shape[-3]}")  # fmt: skip


@dataclass(frozen=True)
class Units:
    """The units a forecast is written in: their name and the range pictures span."""

    label: str
    vrange: tuple[float, float]


def write_prediction(path: Path, pred: np.ndarray, context: Context, units: Units) -> None:
    """`pred` (the context's layout, in `units`, with the forecast's frames) into `path`, in
    the format its extension names."""
    writers = (
        (ARRAYS, lambda: _write_array(path, pred)),
        (XARRAY, lambda: _write_xarray(path, pred, context, units.label)),
        (HDF5, lambda: _write_hdf5(path, pred, context)),
        ((*CODECS, *PICTURES), lambda: _write_moving_picture(path, pred, context, units.vrange)),
    )
    for extensions, write in writers:
        if _suffix(path) in extensions:
            return write()
    raise DataError(f"{path}: cannot write predictions as {_suffix(path) or 'this'}")


def _write_array(path: Path, pred: np.ndarray) -> None:
    with open(path, "wb") as f:
        if _suffix(path) == ".npz":
            np.savez(f, prediction=pred)
        else:
            np.save(f, pred)


def _write_moving_picture(path: Path, pred: np.ndarray, context: Context, vrange) -> None:
    """Pictures of the first forecast, `vrange` spanning black to white."""
    from mimcast.evaluation import viz

    lo, hi = vrange
    first = pred[0] if pred.ndim == 5 else pred  # (T, C, H, W): the first sequence
    fps = context.meta.get("fps", 4.0)
    if _suffix(path) == ".gif":
        viz.save_gif(first, path, fps=fps, vrange=(lo, hi), scale=1)
        return
    u8 = np.round(np.clip((first - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    write_video(path, u8, fps=fps)


def _write_xarray(path: Path, pred: np.ndarray, context: Context, units: str) -> None:
    xr = _xarray()
    pred = pred[0] if pred.ndim == 5 else pred  # one sequence (check_writable)
    if context.kind != "xarray":  # from an array: plain dimensions and an integer time
        da = xr.DataArray(pred, dims=("time", "channel", "y", "x"), name="prediction",
                          attrs={"units": units})  # fmt: skip
        ds = da.to_dataset()
    else:
        src, time = context.meta["da"], context.meta["time"]
        values = pred if src.ndim == 4 else pred[:, 0]
        coords = {k: v for k, v in src.coords.items() if time not in v.dims}  # lat, lon...
        coords[time] = context.meta["axis"].after(len(values))
        da = xr.DataArray(values, dims=src.dims, coords=coords, name=src.name,
                          attrs=dict(src.attrs))  # fmt: skip
        ds = da.to_dataset()
        ds.attrs.update(context.meta.get("attrs", {}))
    ds.attrs[OWNER_ATTR] = "mimcast"  # a store mimcast may later overwrite
    if _suffix(path) == ".zarr":
        _write_zarr(path, ds)
    else:
        ds.to_netcdf(path, engine="h5netcdf")


def _write_zarr(path: Path, ds: Any) -> None:
    """`ds` as a Zarr store in the folder `path`: built in memory, then written file by file.

    Zarr's own writer runs its chunk writes as asyncio tasks; when the disk fills, the error
    comes back while other tasks still write, re-creating files after the caller has removed
    the store and printing "Task was destroyed but it is pending!" at exit. Plain writes
    fail at once and leave only what the caller removes."""
    from zarr.errors import ZarrUserWarning
    from zarr.storage import MemoryStore

    chunks: dict[str, Any] = {}
    with warnings.catch_warnings():  # consolidated metadata, which xarray reads fastest
        warnings.filterwarnings("ignore", "Consolidated metadata", ZarrUserWarning)
        ds.to_zarr(MemoryStore(chunks), mode="w")
    for key, buffer in sorted(chunks.items()):
        file = path / key
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(buffer.to_bytes())


def _write_hdf5(path: Path, pred: np.ndarray, context: Context) -> None:
    import h5py

    name = context.meta.get("name", "prediction")
    values = pred[:, 0] if context.meta.get("squeeze") else pred  # the input's own rank
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(name, data=values)
        for k, v in context.meta.get("attrs", {}).items():
            ds.attrs[k] = v


def written_by_mimcast(store: Path) -> bool:
    """Whether the folder `store` is a Zarr store of a forecast mimcast wrote."""
    if _suffix(store) != ".zarr":
        return False
    try:
        return _xarray().open_zarr(store).attrs.get(OWNER_ATTR) == "mimcast"
    except Exception:  # noqa: BLE001 - not a Zarr store at all
        return False
