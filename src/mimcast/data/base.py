"""Base class, normalisers and windowing helpers shared by every mimcast dataset.

Every dataset is a `SequenceDataset`: item ``i`` is a float32 tensor (T, C, H, W) in *model
units* (the range in ``value_range``, usually [0, 1]); ``to_units`` maps model units back to the
data's own units (``units``), ``from_units`` maps data units to model units. Both are affine maps,
so metrics can be computed in the data's units (e.g. TaxiBJ vehicles) after prediction.
"""

from __future__ import annotations

import functools
import inspect
import os
import typing
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from mimcast.errors import ConfigError, DataError
from mimcast.settings import Rule, typed_value

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class Affine:
    """Affine map between model units and data units: ``data = model * scale + offset``.

    ``scale`` and ``offset`` are scalars or arrays shaped (C, 1, 1), so they broadcast over the
    trailing (C, H, W) axes of frames, sequences or batches.
    """

    def __init__(self, scale: float | np.ndarray = 1.0, offset: float | np.ndarray = 0.0) -> None:
        self.scale = np.asarray(scale, dtype=np.float64)
        self.offset = np.asarray(offset, dtype=np.float64)
        if np.any(self.scale == 0) or not np.all(np.isfinite(self.scale)):
            raise DataError(f"normalisation scale must be finite and non-zero, got {scale}")

    def _params(self, x: Any) -> tuple[Any, Any]:
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.float32
            return (
                torch.as_tensor(self.scale, dtype=dtype, device=x.device),
                torch.as_tensor(self.offset, dtype=dtype, device=x.device),
            )
        dtype = x.dtype if np.issubdtype(np.asarray(x).dtype, np.floating) else np.float32
        return self.scale.astype(dtype), self.offset.astype(dtype)

    def to_units(self, x: ArrayT) -> ArrayT:
        """Model units -> data units; same type (numpy or torch) as ``x``."""
        scale, offset = self._params(x)
        return x * scale + offset

    def from_units(self, x: ArrayT) -> ArrayT:
        """Data units -> model units; same type (numpy or torch) as ``x``."""
        scale, offset = self._params(x)
        return (x - offset) / scale

    def __repr__(self) -> str:
        return f"Affine(scale={self.scale.tolist()}, offset={self.offset.tolist()})"


PIXEL = Affine(scale=255.0)  # model [0, 1] <-> 8-bit pixel intensity 0-255
PIXEL_UNITS = "pixel intensity (0-255)"


def minmax_affine(lo: np.ndarray | float, hi: np.ndarray | float, where: str) -> Affine:
    """Affine that maps [lo, hi] (data units) to [0, 1] (model units).

    A constant part (hi == lo) would divide by zero; it is mapped with scale 1 instead, so the
    constant becomes 0 in model units and the inverse is still exact.
    """
    lo_a, hi_a = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if not (np.all(np.isfinite(lo_a)) and np.all(np.isfinite(hi_a))):
        raise DataError(f"cannot fit min-max scaling on {where}: no finite values")
    span = np.where(hi_a > lo_a, hi_a - lo_a, 1.0)
    return Affine(scale=span, offset=lo_a)


class SequenceDataset(Dataset):
    """A dataset of sequences: item ``i`` is a float32 tensor (T, C, H, W) in model units.

    Subclasses set the attributes below and implement ``__len__``, ``_load(i)`` (returning an
    array (T, C, H, W) in model units) and optionally ``_where(i)`` (where item ``i`` comes from,
    used in error messages).

    Attributes:
        name: dataset name used in messages.
        seq_len: T, frames per item (context + future).
        context_len: default number of input frames.
        frame_shape: (C, H, W).
        value_range: (low, high) of model units.
        units: the data's own units, those returned by ``to_units``.
        source: the file or folder read ("" for generated data), used in messages.
        normalizer: the `Affine` map between model and data units.
        split_rule: how the splits are made, in words (`mimcast data info`).
        given_inputs: groups of trailing channels of each frame that are known inputs, not
            forecasts ((name, channels), e.g. taxibj's period, trend, externals); () for most.
        note: how the data set was resolved (axes guessed, one file taken among several), for
            `mimcast data info` and the training log; "" when there is nothing to say.
    """

    name: str = "dataset"
    seq_len: int
    context_len: int
    frame_shape: tuple[int, int, int]
    value_range: tuple[float, float] = (0.0, 1.0)
    units: str = "intensity in [0,1]"
    normalizer: Affine = Affine()
    source: str = ""
    note: str = ""
    given_inputs: tuple[tuple[str, int], ...] = ()
    split_rule: str = ""  # how the data set's splits are made (mimcast data info)
    # Run-config sections this kind of data trains with unless the user says otherwise (above
    # the preset, below a config file and flags), printed at the start of training.
    run_defaults: ClassVar[dict] = {}

    @property
    def forecast_channels(self) -> int:
        """Channels of a frame that are forecast (and scored): those before the given inputs."""
        return int(self.frame_shape[0]) - sum(n for _, n in self.given_inputs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every data set's options are checked against their annotations, whichever way it is
        # built (build_dataset, data.options, or the class itself).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _checking_options(init)  # type: ignore[method-assign]

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _where(self, i: int) -> str:
        return f"{self.name} item {i}"

    def __getitem__(self, i: int) -> torch.Tensor:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"{self.name}: index must be an int, got {type(i).__name__}")
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} sequences")
        arr = np.asarray(self._load(int(i)), dtype=np.float32)  # (T, C, H, W)
        if arr.shape != (self.seq_len, *self.frame_shape):
            raise DataError(
                f"{self._where(int(i))}: got shape {arr.shape}, "
                f"expected {(self.seq_len, *self.frame_shape)}"
            )
        # Checked per item, so huge files are validated as they stream instead of read whole.
        if not np.isfinite(arr).all():
            raise DataError(f"{self._where(int(i))} contains NaN or inf values")
        return torch.from_numpy(np.ascontiguousarray(arr))

    def to_units(self, x: ArrayT) -> ArrayT:
        """Model units -> the data's own units (see ``units``); numpy or torch in, same out."""
        return self.normalizer.to_units(x)

    def from_units(self, x: ArrayT) -> ArrayT:
        """Data units -> model units; numpy or torch in, same out."""
        return self.normalizer.from_units(x)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, len={len(self)}, seq_len={self.seq_len}, "
            f"context_len={self.context_len}, frame_shape={self.frame_shape}, "
            f"value_range={self.value_range}, units={self.units!r})"
        )


@functools.cache
def init_options(init: Callable) -> dict[str, Any]:
    """The options an __init__ takes (its keyword-only arguments), each with its annotation
    (Any when it has none)."""
    hints = typing.get_type_hints(init, include_extras=True)
    params = inspect.signature(init).parameters.values()
    return {p.name: hints.get(p.name, Any) for p in params if p.kind is p.KEYWORD_ONLY}


def checked_options(hints: dict[str, Any], options: dict[str, Any], where: str) -> dict:
    """`options` typed and bounded by their annotations (`settings.typed_value`), numbers
    finite: a DataError naming the option for a wrong type (`size=true`, `channels=1.7`), a
    broken bound or a NaN."""
    out = {}
    for key, value in options.items():
        name = f"{where}: option {key}"
        try:
            out[key] = typed_value(value, hints[key], name) if key in hints else value
        except ConfigError as e:
            raise DataError(str(e)) from e
        problem = Rule().problem(out[key])  # the rule of every setting: finite numbers
        if problem:
            raise DataError(f"{name} {problem}")
    return out


def _checking_options(init: Callable) -> Callable:
    @functools.wraps(init)
    def checked(self: SequenceDataset, *args: Any, **options: Any) -> None:
        init(self, *args, **checked_options(init_options(init), options, self.name))

    return checked


def check_lengths(seq_len: int, context_len: int, where: str) -> tuple[int, int]:
    """Validate seq_len (T) and context_len: at least one context and one future frame."""
    seq_len, context_len = int(seq_len), int(context_len)
    if seq_len < 2:
        raise DataError(f"{where}: seq_len must be >= 2, got {seq_len}")
    if not 1 <= context_len < seq_len:
        raise DataError(
            f"{where}: context_len must be in [1, seq_len - 1] = [1, {seq_len - 1}], "
            f"got {context_len}"
        )
    return seq_len, context_len


def check_split(split: str, where: str) -> str:
    if split not in ("train", "val", "test"):
        raise DataError(f"{where}: unknown split {split!r}; valid: train, val, test")
    return split


def window_starts(start: int, stop: int, seq_len: int, stride: int) -> np.ndarray:
    """Start indices of windows of ``seq_len`` steps inside [start, stop), stepping by stride."""
    if stride < 1:
        raise DataError(f"stride must be >= 1, got {stride}")
    last = stop - seq_len
    if last < start:
        return np.zeros(0, dtype=np.int64)
    return np.arange(start, last + 1, stride, dtype=np.int64)


def split_bounds(n: int, fractions: Sequence[float], where: str) -> dict[str, tuple[int, int]]:
    """Chronological [start, stop) of train/val/test for ``n`` steps split by three fractions."""
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(f < 0 or not np.isfinite(f) for f in fr) or sum(fr) <= 0:
        raise DataError(f"{where}: fractions must be three non-negative numbers, got {fractions}")
    if sum(fr) > 1 + 1e-9:
        raise DataError(f"{where}: fractions {tuple(fr)} sum to more than 1")
    a = round(n * fr[0])
    b = round(n * (fr[0] + fr[1]))
    c = round(n * (fr[0] + fr[1] + fr[2]))
    return {"train": (0, a), "val": (a, b), "test": (b, c)}


def time_bounds(
    n: int, fractions: Sequence[float], seq_len: int, where: str
) -> dict[str, tuple[int, int]]:
    """[start, stop) of train/val/test within a clip of `n` frames: `split_bounds`, then val
    and test (of a non-zero fraction) each grown to one window of `seq_len` frames where their
    fraction holds none, taken from the end of train while train keeps a window (a 68-frame
    clip, seq_len 20: 28/20/20 instead of 54/7/7, which would hold no val or test window).
    Growing only where a part would be empty keeps every clip long enough as it was. (The
    parts are sized with this split's seq_len: eval_options.seq_len more than twice the
    training one on a clip this short could make the test part reach into training frames.)"""
    bounds = split_bounds(n, fractions, where)
    lengths = [b - a for a, b in bounds.values()]
    for k in (2, 1):  # test first: it is the part the user reads
        need = seq_len - lengths[k]
        if float(fractions[k]) > 0 and need > 0 and lengths[0] - need >= seq_len:
            lengths[0] -= need
            lengths[k] = seq_len
    a, b = lengths[0], lengths[0] + lengths[1]
    return {"train": (0, a), "val": (a, b), "test": (b, b + lengths[2])}


def file_bounds(n: int, fractions: Sequence[float], where: str) -> dict[str, tuple[int, int]]:
    """[start, stop) of train/val/test over `n` clips: `split_bounds`, then one clip more for
    each split of a non-zero fraction that rounding left empty (3 clips: 1/1/1, 5: 3/1/1),
    taken from the clips no fraction covers, else from the largest split."""
    bounds = split_bounds(n, fractions, where)
    counts = [b - a for a, b in bounds.values()]
    wanted = [k for k in (0, 2, 1) if float(fractions[k]) > 0]
    if n < len(wanted):
        raise DataError(f"{where}: {n} clip(s) cannot be split by file into "
                        f"{len(wanted)} parts: give data.options.split_by=time")  # fmt: skip
    for k in (k for k in wanted if counts[k] == 0):
        if sum(counts) == n:  # no spare clip: the largest split gives one
            counts[max(range(3), key=lambda j: counts[j])] -= 1
        counts[k] += 1
    a, b = counts[0], counts[0] + counts[1]
    return {"train": (0, a), "val": (a, b), "test": (b, b + counts[2])}


def find_in_folder(root: Path, patterns: Sequence[str], what: str) -> tuple[Path, str]:
    """The file a data-set folder holds under one of its standard names (glob patterns, in
    order of preference, e.g. OpenSTL's data/moving_mnist/ layout), and a note naming the
    choice when several were there."""
    found: list[Path] = []
    for pattern in patterns:
        found += [p for p in sorted(root.glob(pattern)) if p.is_file() and p not in found]
    if not found:
        raise DataError(
            f"{what}: {root} is a folder without {' or '.join(patterns)}; give the file itself"
        )
    note = ""
    if len(found) > 1:
        others = ", ".join(str(p.relative_to(root)) for p in found[1:4])
        note = f"took {found[0]} (also there: {others})"
    return found[0], note


def require_path(path: str | os.PathLike | None, what: str, *, is_dir: bool | None = None) -> Path:
    """Return ``path`` as a Path, or raise DataError if it is missing or of the wrong kind."""
    if path is None:
        raise DataError(f"{what}: no path given (pass root=...)")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what}: {p} does not exist")
    if is_dir is True and not p.is_dir():
        raise DataError(f"{what}: {p} is not a folder")
    if is_dir is False and p.is_dir():
        raise DataError(f"{what}: {p} is a folder, expected a file")
    return p


def _stored_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray | None:
    """A memory map of an uncompressed (np.savez) member's array, or None when it cannot be
    mapped (object dtype)."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        header_len = f.tell()
    if dtype.hasobject:
        return None
    with open(path, "rb") as raw:
        # Local file header: 30 fixed bytes + file name + extra field.
        raw.seek(info.header_offset + 26)
        lens = np.frombuffer(raw.read(4), dtype="<u2")
    offset = info.header_offset + 30 + int(lens[0]) + int(lens[1]) + header_len
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def npz_member(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an .npz file, memory-mapped when the member is stored uncompressed.

    ``np.load`` reads npz members whole; np.savez (not savez_compressed) stores members raw, so
    their bytes can be mapped straight from the zip file and large files stream instead.
    Compressed members are read whole (there is no way to map them).
    """
    name = key if key.endswith(".npy") else key + ".npy"
    try:
        with zipfile.ZipFile(path) as zf:
            if name not in zf.namelist():
                names = sorted(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
                raise DataError(f"{path}: no key {key!r}; keys: {', '.join(names)}")
            info = zf.getinfo(name)
            mapped = (
                _stored_member(path, zf, info) if info.compress_type == zipfile.ZIP_STORED else None
            )
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    if mapped is not None:
        return mapped
    with np.load(path, allow_pickle=False) as z:
        return z[key]


def npz_keys(path: Path) -> list[str]:
    """Array names of an .npz file (without reading the arrays)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return sorted(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e


def load_npy(path: Path) -> np.ndarray:
    """Memory-mapped .npy array (never read whole)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # EOFError: an empty (zero-byte) file
        raise DataError(f"{path}: not a readable .npy file ({e})") from e


def iter_chunks(n: int, row_bytes: int, budget: int = 64 << 20) -> Iterable[tuple[int, int]]:
    """[start, stop) blocks of ``n`` rows of ``row_bytes`` each, at most ``budget`` bytes each."""
    step = max(1, budget // max(1, row_bytes))
    for s in range(0, n, step):
        yield s, min(n, s + step)
