"""The user's own gridded data: .npy/.npz, HDF5, netCDF or Zarr, streamed in windows.

An array holds either one long series (time, [channel,] H, W) or a set of sequences (with a
``sequence_axis``); axes are given by position, or by name for netCDF/Zarr (read with xarray,
lazily, without caching). Windows of ``seq_len`` steps start every ``stride`` steps. The split is
chronological: the series (or the sequences, in file order) is cut by ``fractions`` (train, val,
test), and no window crosses a cut. A netCDF/Zarr time coordinate must therefore increase, by
one step (time_axis.py; ``irregular_time`` accepts uneven steps). Items are (seq_len, C, H, W)
float32 in model units:

* ``normalize="minmax"``: [0, 1] on the training part (fitted there only, globally or
  ``per_channel``); val/test may fall slightly outside.
* ``normalize="scale"``: (x - offset) / scale with the user's ``scale`` and ``offset``.
* ``normalize="none"``: the data as is.
``to_units`` inverts the map, giving the data's own units (``units`` names them). ``value_range``
is [0, 1] for min-max, otherwise the range observed on the training part in model units.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimcast.errors import DataError

from .base import (
    Affine,
    SequenceDataset,
    check_lengths,
    check_split,
    iter_chunks,
    load_npy,
    minmax_affine,
    npz_keys,
    npz_member,
    require_path,
    split_bounds,
    window_starts,
)
from .time_axis import check_time_axis

XARRAY_EXT = {".nc", ".nc4", ".cdf", ".netcdf"}
HDF5_EXT = {".h5", ".hdf5", ".he5", ".hdf"}
Axis = int | str | None
_DIM_NAMES = {
    "time": ("time", "t", "frame"),
    "channel": ("channel", "channels", "band", "c"),
    "sequence": ("sequence", "sample", "n", "member"),
}


def _is_zarr(p: Path) -> bool:
    return p.suffix == ".zarr" or (
        p.is_dir() and any((p / n).exists() for n in ("zarr.json", ".zgroup", ".zarray"))
    )


def _pick(names: Sequence[str], key: str | None, path: Path, what: str) -> str:
    if key is None:
        if len(names) == 1:
            return names[0]
        raise DataError(f"{path}: {len(names)} {what}s, choose one with key=: {', '.join(names)}")
    if key not in names:
        raise DataError(f"{path}: no {what} {key!r}; {what}s: {', '.join(names) or 'none'}")
    return key


class ArraySource:
    """A lazily opened array in a file; ``read(index)`` returns only the indexed part.

    The open handle lives per process (dropped when pickled for DataLoader workers), since
    h5py and netCDF handles do not survive a fork.
    """

    def __init__(self, path: Path, key: str | None) -> None:
        self.path, self._obj, self._pid = path, None, os.getpid()
        if _is_zarr(path) or path.suffix in XARRAY_EXT:
            self.kind = "xarray"
        elif path.suffix in HDF5_EXT:
            self.kind = "h5"
        elif path.suffix in (".npy", ".npz"):
            self.kind = path.suffix[1:]
        else:
            raise DataError(f"{path}: unknown format; use .npy, .npz, .h5, .nc or .zarr")
        self.key = self._resolve_key(key)
        arr = self.obj
        self.shape = tuple(int(v) for v in arr.shape)
        self.dims: tuple[str, ...] | None = tuple(arr.dims) if self.kind == "xarray" else None
        self.units = str(arr.attrs.get("units", "")) if hasattr(arr, "attrs") else ""
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise DataError(f"{self.where}: expected real numbers, got dtype {arr.dtype}")

    @property
    def where(self) -> str:
        return f"{self.path}:{self.key}" if self.key else str(self.path)

    def _open_xarray(self):
        try:
            import xarray as xr
        except ImportError as e:
            raise DataError("netCDF/Zarr need xarray: pip install mimcast[formats]") from e
        try:
            if _is_zarr(self.path):
                with warnings.catch_warnings():
                    # Stores without consolidated metadata open fine, with a speed warning.
                    warnings.simplefilter("ignore", RuntimeWarning)
                    return xr.open_dataset(self.path, engine="zarr", chunks=None, cache=False)
            # cache=False: xarray would otherwise keep every variable it reads in memory.
            return xr.open_dataset(self.path, cache=False)
        except Exception as e:  # xarray raises many kinds for unreadable files
            raise DataError(f"{self.path}: cannot open with xarray ({e})") from e

    def _resolve_key(self, key: str | None) -> str | None:
        if self.kind == "npy":
            return None
        if self.kind == "npz":
            return _pick(npz_keys(self.path), key, self.path, "array")
        if self.kind == "h5":
            f = self._h5()
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if hasattr(o, "shape") else None)
            return _pick(sorted(names), key, self.path, "dataset")
        ds = self._open_xarray()
        return _pick(sorted(str(v) for v in ds.data_vars), key, self.path, "variable")

    def _h5(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(f"{self.path}: not a readable HDF5 file ({e})") from e

    @property
    def obj(self) -> Any:
        if self._pid != os.getpid():  # a DataLoader worker: reopen rather than share a handle
            self._obj, self._pid = None, os.getpid()
        if self._obj is None:
            self._obj = self._open()
        return self._obj

    def _open(self) -> Any:
        if self.kind == "npy":
            return load_npy(self.path)
        if self.kind == "npz":
            return npz_member(self.path, self.key)
        if self.kind == "h5":
            return self._h5()[self.key]
        return self._open_xarray()[self.key]

    def read(self, index: tuple) -> np.ndarray:
        if self.kind == "xarray":
            return np.asarray(self.obj.isel(dict(zip(self.dims, index, strict=True))).values)
        return np.asarray(self.obj[index])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_obj"] = None
        return state


class CustomDataset(SequenceDataset):
    """The user's data; items (seq_len, C, H, W) float32 in model units (see module docstring).

    Args:
        root: the file (.npy, .npz, .h5/.hdf5, .nc) or Zarr store.
        split: "train", "val" or "test" (chronological, by ``fractions``, default 0.8/0.1/0.1).
        key: array / dataset / variable name when the file holds several.
        time_axis, channel_axis, sequence_axis: positions, or dimension names for netCDF/Zarr
            (None: no such axis). The two other axes are H, W. Left "auto" (the default), they
            are found by name (time/t/frame, channel/band/c, sequence/sample/n) or guessed from
            the rank: (T, H, W), (T, C, H, W) or (N, T, C, H, W).
        seq_len (20), context_len (10), stride (1): windows.
        normalize: "minmax" (default), "scale" (needs ``scale``; ``offset`` 0) or "none".
        per_channel: min-max per channel instead of one global min and max.
        units: name of the data's own units, returned by ``to_units`` (default: the variable's
            `units` attribute in netCDF/Zarr/HDF5, else "data units").
        irregular_time: accept a netCDF/Zarr time coordinate whose steps differ (windows then
            span different lengths of time); one out of order is refused all the same.
    """

    name = "custom"

    def __init__(
        self,
        root: str | os.PathLike | None,
        split: str = "train",
        *,
        key: str | None = None,
        time_axis: Axis = "auto",
        channel_axis: Axis = "auto",
        sequence_axis: Axis = "auto",
        seq_len: int = 20,
        context_len: int = 10,
        stride: int = 1,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        normalize: str = "minmax",
        scale: float | None = None,
        offset: float = 0.0,
        per_channel: bool = False,
        units: str | None = None,
        irregular_time: bool = False,
    ) -> None:
        self.split = check_split(split, self.name)
        self.seq_len, self.context_len = check_lengths(seq_len, context_len, self.name)
        if normalize not in ("minmax", "scale", "none"):
            raise DataError(
                f"{self.name}: unknown normalize {normalize!r}; valid: minmax, scale, none"
            )
        if normalize == "scale" and scale is None:
            raise DataError(f"{self.name}: normalize='scale' needs scale=<number>")
        path = require_path(root, self.name)
        if path.is_dir() and not _is_zarr(path):
            raise DataError(f"{path} is a folder but not a Zarr store")
        self.src = src = ArraySource(path, key)
        self.where = self.source = src.where
        time_axis, channel_axis, sequence_axis = self._guess_axes(
            time_axis, channel_axis, sequence_axis
        )
        axes = [self._axis(a, n) for a, n in ((time_axis, "time_axis"),
                (channel_axis, "channel_axis"), (sequence_axis, "sequence_axis"))]  # fmt: skip
        self.t_ax, self.c_ax, self.n_ax = axes
        given = [a for a in axes if a is not None]
        want = 2 + len(given)
        if len(src.shape) != want:
            raise DataError(
                f"{self.where}: rank {len(src.shape)} (shape {src.shape}), expected {want}: "
                f"time, {'channel, ' if self.c_ax is not None else ''}"
                f"{'sequence, ' if self.n_ax is not None else ''}H, W"
            )
        if len(set(given)) != len(given):
            raise DataError(f"{self.where}: time, channel and sequence axes must differ")
        h_ax, w_ax = (a for a in range(want) if a not in given)
        c = 1 if self.c_ax is None else src.shape[self.c_ax]
        self.frame_shape = (c, src.shape[h_ax], src.shape[w_ax])
        # Axis order of a read block once the sequence axis is indexed away -> (T, C, H, W).
        kept = [a for a in range(want) if a != self.n_ax]
        order = [self.t_ax, *([self.c_ax] if self.c_ax is not None else []), h_ax, w_ax]
        self.perm = [kept.index(a) for a in order]
        self._check_time_coordinate(bool(irregular_time))
        self._build_windows(split, int(stride), fractions)
        self._per_channel = bool(per_channel)
        lo, hi = self._scan_train()
        if normalize == "minmax":
            self.normalizer = minmax_affine(lo, hi, f"the training part of {self.where}")
            self.value_range = (0.0, 1.0)
        else:
            self.normalizer = (
                Affine(float(scale), float(offset)) if normalize == "scale" else Affine()
            )
            lo_m, hi_m = (np.asarray(self.normalizer.from_units(v)) for v in (lo, hi))
            self.value_range = (float(np.min(lo_m)), float(np.max(hi_m)))
        self.units = units or src.units or "data units"

    def _guess_axes(self, t: Axis, c: Axis, n: Axis) -> tuple[Axis, Axis, Axis]:
        """Axes left "auto": by dimension name (netCDF/Zarr) or by rank: (T, H, W),
        (T, C, H, W) or (N, T, C, H, W). The guess is told in `note` (mimcast data info)."""
        given = [a for a in (t, c, n) if a != "auto"]
        if given:  # some axes given: the others are absent, time defaults to 0
            self.note = ""
            return (
                (0 if t == "auto" else t),
                (None if c == "auto" else c),
                (None if n == "auto" else n),
            )
        dims = self.src.dims or ()
        named = {role: next((d for d in dims if d.lower() in names), None)
                 for role, names in _DIM_NAMES.items()}  # fmt: skip
        if named["time"] is not None:
            guess = (named["time"], named["channel"], named["sequence"])
            self.note = (
                f"axes by name: time {guess[0]!r}, channel {guess[1]!r}, sequence {guess[2]!r}"
            )
            return guess
        rank = len(self.src.shape)
        layouts = {3: (0, None, None), 4: (0, 1, None), 5: (1, 2, 0)}
        if rank not in layouts:
            raise DataError(
                f"{self.where}: rank {rank} (shape {self.src.shape}); without axis options an "
                "array is (T, H, W), (T, C, H, W) or (N, T, C, H, W): set time_axis, "
                "channel_axis and sequence_axis"
            )
        names = {3: "(T, H, W)", 4: "(T, C, H, W)", 5: "(N, T, C, H, W)"}[rank]
        self.note = (
            f"axes guessed from rank {rank}: {names} (time_axis, channel_axis and "
            "sequence_axis say otherwise)"
        )
        return layouts[rank]

    def _axis(self, a: Axis, label: str) -> int | None:
        if a is None:
            return None
        rank, dims = len(self.src.shape), self.src.dims
        if isinstance(a, str):
            if dims is None:
                raise DataError(
                    f"{self.where}: {label}={a!r}: axis names need netCDF or Zarr; give a position"
                )
            if a not in dims:
                raise DataError(f"{self.where}: no axis named {a!r}; axes: {', '.join(dims)}")
            return dims.index(a)
        if not -rank <= int(a) < rank:
            raise DataError(f"{self.where}: {label}={a} out of range for rank {rank}")
        return int(a) % rank

    def _check_time_coordinate(self, irregular: bool) -> None:
        """A netCDF/Zarr time coordinate runs forward by one step: a window is equal steps and
        the split is chronological (a reversed axis would train on the latest times)."""
        if self.src.dims is None or self.src.dims[self.t_ax] not in self.src.obj.coords:
            return  # positions only: in order by construction
        times = np.asarray(self.src.obj[self.src.dims[self.t_ax]].values)
        fix = "set data.options.irregular_time=true to use its windows as they are"
        check_time_axis(times, self.where, uneven_ok=irregular, fix=fix)

    def _build_windows(self, split: str, stride: int, fractions: Sequence[float]) -> None:
        n_t = self.src.shape[self.t_ax]
        if n_t < self.seq_len:
            kind = "series" if self.n_ax is None else "sequences"
            raise DataError(
                f"{self.where}: {kind} of length {n_t} shorter than one window "
                f"(seq_len {self.seq_len})"
            )
        cut = "/".join(f"{f:g}" for f in fractions)
        self.split_rule = (
            f"chronological, {cut} (train/val/test) of the "
            + ("time axis" if self.n_ax is None else "sequences, in file order")
            + f"; windows of {self.seq_len} steps every {stride}, none across a cut"
        )
        if self.n_ax is None:  # one long series: cut the time axis
            self.bounds = split_bounds(n_t, fractions, self.where)
            a, b = self.bounds[split]
            starts = window_starts(a, b, self.seq_len, stride)
            rows = [(-1, int(s)) for s in starts]
            what = f"steps {a}-{b - 1}, {b - a} steps"
        else:  # a set of sequences: cut the sequence axis, window inside each sequence
            self.bounds = split_bounds(self.src.shape[self.n_ax], fractions, self.where)
            a, b = self.bounds[split]
            starts = window_starts(0, n_t, self.seq_len, stride)
            rows = [(j, int(s)) for j in range(a, b) for s in starts]
            what = f"sequences {a}-{b - 1}"
        if not rows:
            raise DataError(
                f"{self.where}: the {split} part ({what}) is shorter than one window "
                f"of {self.seq_len} steps"
            )
        self.windows = np.asarray(rows, dtype=np.int64)  # (N, 2): sequence (or -1), start

    def _index(self, seq: int, t0: int, t1: int) -> tuple:
        idx: list[Any] = [slice(None)] * len(self.src.shape)
        idx[self.t_ax] = slice(t0, t1)
        if self.n_ax is not None:
            idx[self.n_ax] = seq
        return tuple(idx)

    def _block(self, seq: int, t0: int, t1: int) -> np.ndarray:
        x = self.src.read(self._index(seq, t0, t1)).astype(np.float64)
        x = x.transpose(self.perm)
        return x if self.c_ax is not None else x[:, None]  # (T, C, H, W)

    def _scan_train(self) -> tuple[np.ndarray, np.ndarray]:
        """Min and max (global or per channel, shaped (C, 1, 1)) of the training part, read in
        bounded blocks; NaN/inf there is reported with its location."""
        a, b = self.bounds["train"]
        c, h, w = self.frame_shape
        if self.n_ax is None:
            blocks = [(-1, a + s, a + e) for s, e in iter_chunks(b - a, c * h * w * 8)]
        else:
            blocks = [(j, 0, self.src.shape[self.t_ax]) for j in range(a, b)]
        lo = np.full((c, 1, 1), np.inf)
        hi = np.full((c, 1, 1), -np.inf)
        for seq, t0, t1 in blocks:
            x = self._block(seq, t0, t1)
            finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
            if not finite.all():
                at = f"sequence {seq} " if seq >= 0 else ""
                t = t0 + int(np.argmin(finite))
                raise DataError(f"{self.where}: NaN or inf values at {at}time index {t}")
            lo = np.minimum(lo, x.min(axis=(0, 2, 3)).reshape(c, 1, 1))
            hi = np.maximum(hi, x.max(axis=(0, 2, 3)).reshape(c, 1, 1))
        if not self._per_channel:
            lo, hi = lo.min(), hi.max()
        return lo, hi

    def __len__(self) -> int:
        return len(self.windows)

    def _where(self, i: int) -> str:
        seq, s = (int(v) for v in self.windows[i])
        at = f"sequence {seq}, " if seq >= 0 else ""
        return f"{self.where} ({at}time {s}-{s + self.seq_len - 1})"

    def _load(self, i: int) -> np.ndarray:
        seq, s = (int(v) for v in self.windows[i])
        return self.normalizer.from_units(self._block(seq, s, s + self.seq_len))
