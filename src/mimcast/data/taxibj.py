"""TaxiBJ crowd flows: the original BJ13..BJ16 HDF5 files, or OpenSTL's ``dataset.npz``.

Items are (seq_len, 2, 32, 32) float32: channel 0 inflow, channel 1 outflow, in model units
[0, 1] (min-max). ``to_units`` gives vehicles per 30-minute slot.

From the HDF5 files (key ``data`` (T, 2, H, W), key ``date`` byte strings ``YYYYMMDDss``, slot
ss = 01..48): days without all 48 slots are dropped, negatives set to 0, and the min-max scaler is
fitted on the training part only. Windows are ``seq_len`` consecutive slots in forward time
order, never crossing a gap (a dropped day, the gap between files) or a split boundary. The last
``test_days`` (28, four weeks, as ST-ResNet) complete days are the test part. Unlike the TF MIM
loader, windows are not built newest-first and the scaler never sees test data.

From OpenSTL's ``dataset.npz`` (X_train, Y_train, X_test, Y_test, (N, 4, 2, 32, 32) in [-1, 1]):
model units are (x + 1) / 2 as in OpenSTL; the file does not store the scaler, so ``to_units``
returns the file's [-1, 1] units unless ``data_max`` (and ``data_min``, default 0) give the
min-max used to make it (DeepST's scaler, fitted on the data, had min 0 and max 1292).

ST-ResNet's inputs (``period_days``, ``trend_weeks``, ``externals``; .h5 files only, off by
default): each frame at slot t carries, after its two flows, the flows of slot t + 1 one to
``period_days`` days back, then one to ``trend_weeks`` weeks back (newest first, in model
units), then the external factors of slot t + 1 as constant maps (``externals``: the files
BJ_Holiday.txt and BJ_Meteorology.h5 beside the BJ files; 28 factors, see taxibj_inputs.py).
They are the inputs ST-ResNet needs to predict the slot after the frame, known ahead of it;
``given_inputs`` names them. A window is kept only when every frame has all of them: a period
or trend slot that is not in the data (a dropped day, a gap) drops the window; references may
lie in earlier parts (past flows are known), never in later ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mimcast.errors import DataError

from .base import (
    Affine,
    SequenceDataset,
    check_lengths,
    check_split,
    iter_chunks,
    minmax_affine,
    npz_keys,
    npz_member,
    require_path,
)
from .taxibj_inputs import (
    SLOTS,
    Externals,
    all_true_in_windows,
    h5py_module,
    parse_dates,
    reference_lags,
    reference_positions,
)

H5_GLOB = "BJ*_M32x32_T30_InOut.h5"
VEHICLES = "vehicles per 30 min (inflow, outflow)"


def _day_split_rule(test_days: int, val_days: int) -> str:
    return (
        f"complete days only; the last {test_days} days test, "
        + (f"the {val_days} before them val, " if val_days else "val = test, ")
        + "earlier days train; no window crosses a gap or a cut; scaler fitted on train"
    )


class TaxiBJ(SequenceDataset):
    """TaxiBJ; items (seq_len, 2, H, W) in [0, 1] (min-max), ``to_units`` -> vehicles.

    Args:
        root: folder with ``BJ??_M32x32_T30_InOut.h5`` files (used when present) or a
            ``dataset.npz``, or the path of either kind of file.
        split: "train", "val" or "test". "val" is the ``val_days`` days before the test part; with
            ``val_days=0`` (default, the reference protocol) it is the test part.
        seq_len: frames per window (8); context_len: input frames (4). stride: step between
            window starts, counted in valid windows (1). test_days / val_days: days of the test /
            val parts (28 / 0).
        data_min / data_max: the scaler behind an OpenSTL ``dataset.npz`` (see module doc).
        period_days / trend_weeks / externals: ST-ResNet's inputs, as channels after the two
            flows of each frame (see module doc; .h5 files only). Off by default.
    """

    name = "taxibj"
    units = VEHICLES

    def __init__(
        self,
        root: str | os.PathLike | None,
        split: str = "train",
        *,
        seq_len: int = 8,
        context_len: int = 4,
        stride: int = 1,
        test_days: int = 28,
        val_days: int = 0,
        data_min: float = 0.0,
        data_max: float | None = None,
        period_days: int = 0,
        trend_weeks: int = 0,
        externals: bool = False,
    ) -> None:
        self.split = check_split(split, self.name)
        self.seq_len, self.context_len = check_lengths(seq_len, context_len, self.name)
        root_path = require_path(root, self.name)
        self.source = str(root_path)
        files = self._files(root_path) if root_path.is_dir() else [root_path]
        self._handles: dict[int, object] = {}
        inputs = (int(period_days), int(trend_weeks), bool(externals))
        if files[0].suffix == ".npz":
            if any(inputs):
                raise DataError(
                    f"{files[0]}: period_days, trend_weeks and externals need the original .h5 "
                    "files (an OpenSTL dataset.npz has no dates)"
                )
            self._open_npz(files[0], data_min, data_max)
        elif all(f.suffix in (".h5", ".hdf5") for f in files):
            if int(stride) < 1 or int(test_days) < 1 or int(val_days) < 0 or min(inputs) < 0:
                raise DataError(
                    f"{self.name}: need stride >= 1, test_days >= 1, val_days >= 0, period_days "
                    f"and trend_weeks >= 0; got {stride}, {test_days}, {val_days}, "
                    f"{period_days}, {trend_weeks}"
                )
            self._open_h5(files, int(stride), int(test_days), int(val_days), inputs)
        else:
            raise DataError(f"{files[0]}: expected TaxiBJ .h5 files or an OpenSTL dataset.npz")

    def _files(self, root: Path) -> list[Path]:
        """The HDF5 files (or OpenSTL's dataset.npz) in a folder, or one level down in
        taxibj/, TaxiBJ/ or data/taxibj/ (OpenSTL's layout)."""
        for folder in (root, root / "taxibj", root / "TaxiBJ", root / "data" / "taxibj"):
            files = sorted(folder.glob(H5_GLOB))
            npz = folder / "dataset.npz"
            if files or npz.is_file():
                if folder != root:
                    self.note = f"took the files in {folder}"
                if files and npz.is_file():
                    self.note = f"took the .h5 files in {folder} (not its dataset.npz)"
                return files or [npz]
        raise DataError(f"{root}: no {H5_GLOB} files and no dataset.npz (nor in taxibj/)")

    # --- original HDF5 files -------------------------------------------------------------
    def _file(self, k: int):
        # Opened per process: HDF5 handles inherited through fork are not safe to read from.
        if getattr(self, "_pid", None) != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            self._handles[k] = h5py_module().File(self.files[k], "r")
        return self._handles[k]

    def _index(self, files: list[Path]) -> tuple[np.ndarray, ...]:
        """File, row, day and slot number of every frame of complete days, in time order."""
        parts: list[tuple[np.ndarray, ...]] = []
        shape = None
        for k, path in enumerate(files):
            try:
                f = self._file(k)
            except OSError as e:
                raise DataError(f"{path}: not a readable HDF5 file ({e})") from e
            missing = [key for key in ("data", "date") if key not in f]
            if missing:
                raise DataError(f"{path}: no key {missing[0]!r}; keys: {', '.join(f.keys())}")
            data, dates = f["data"], f["date"][()]
            if data.ndim != 4:
                raise DataError(f"{path}: data must be (T, 2, H, W), got shape {data.shape}")
            if shape is not None and data.shape[1:] != shape:
                raise DataError(f"{path}: frames {data.shape[1:]} differ from {shape}")
            shape = data.shape[1:]
            if len(dates) != len(data):
                raise DataError(f"{path}: {len(dates)} dates for {len(data)} frames")
            days, slots = parse_dates(np.asarray(dates).reshape(-1), f"{path}:date")
            n = len(days)
            parts.append((np.full(n, k), np.arange(n), days, slots))
        self.flow_shape = tuple(int(v) for v in shape)
        file_id, row, day, slot = (np.concatenate(p) for p in zip(*parts, strict=True))
        key = day * SLOTS + slot  # continuous time index in slots
        order = np.argsort(key, kind="stable")
        file_id, row, day, key = file_id[order], row[order], day[order], key[order]
        dup = np.flatnonzero(np.diff(key) == 0)
        if len(dup):
            j = dup[0] + 1
            raise DataError(f"{files[file_id[j]]}: duplicate time slot at row {row[j]}")
        # Keep complete days only (all 48 slots present), as the reference preprocessing does.
        uniq, counts = np.unique(day, return_counts=True)
        keep = np.isin(day, uniq[counts == SLOTS])
        return file_id[keep], row[keep], day[keep], key[keep]

    def _open_h5(
        self, files: list[Path], stride: int, test_days: int, val_days: int, inputs: tuple
    ) -> None:
        self.files, self.kind = files, "h5"
        file_id, row, day, key = self._index(files)
        days = np.unique(day)
        if len(days) <= test_days + val_days:
            raise DataError(
                f"{self.name}: {len(days)} complete days, need more than test_days + val_days "
                f"= {test_days + val_days}"
            )
        test0, val0 = days[-test_days], days[-test_days - val_days]
        self.split_rule = _day_split_rule(test_days, val_days)
        part = np.where(day >= test0, 2, np.where(day >= val0, 1, 0))  # 0 train, 1 val, 2 test
        wanted = {"train": 0, "val": 1 if val_days else 2, "test": 2}[self.split]
        # A start p is valid when its seq_len slots are consecutive and in one part, and every
        # frame has the inputs asked for (ST-ResNet's: none by default).
        last = np.arange(len(key) - self.seq_len + 1) + self.seq_len - 1
        ok = (key[last] - key[: len(last)] == self.seq_len - 1) & (part[last] == part[: len(last)])
        ok &= all_true_in_windows(self._open_inputs(key, val0 * SLOTS, *inputs), self.seq_len)
        starts = np.flatnonzero(ok & (part[: len(last)] == wanted))[::stride]
        if not len(starts):
            raise DataError(
                f"{self.name}: the {self.split} part holds no window of {self.seq_len} "
                "consecutive time slots" + (" with their period, trend and externals" * any(inputs))
            )
        self.starts, self.file_id, self.row, self.key = starts, file_id, row, key
        self.normalizer = self._fit_scaler(part == 0)
        self.value_range = (0.0, 1.0)

    def _open_inputs(
        self, key: np.ndarray, fit_before: int, period_days: int, trend_weeks: int, ext: bool
    ) -> np.ndarray:
        """Where the period and trend frames of the slot after each frame are (positions in
        `key`) and its external factors; whether each frame has them all."""
        following = key + 1
        self.references = reference_positions(
            key, following, reference_lags(period_days, trend_weeks)
        )
        ok = (self.references >= 0).all(axis=1)
        self.externals = Externals(self.files[0].parent, fit_before) if ext else None
        if self.externals is not None:
            ok &= self.externals.known(following)
        f, h, w = self.flow_shape
        groups = (("period", f * period_days), ("trend", f * trend_weeks),
                  ("externals", self.externals.count if ext else 0))  # fmt: skip
        self.given_inputs = tuple(g for g in groups if g[1])
        self.frame_shape = (f + sum(n for _, n in groups), h, w)
        return ok

    def _fit_scaler(self, train: np.ndarray) -> Affine:
        """Min-max over the training part only (after negatives -> 0), read in blocks."""
        lo, hi = np.inf, -np.inf
        for k, path in enumerate(self.files):
            rows = np.sort(self.row[train & (self.file_id == k)])
            if not len(rows):
                continue
            data = self._file(k)["data"]
            for a, b in iter_chunks(int(rows[-1]) + 1, int(np.prod(data.shape[1:])) * 8):
                sel = rows[(rows >= a) & (rows < b)]
                if not len(sel):
                    continue
                block = np.asarray(data[a:b], dtype=np.float64)[sel - a]
                bad = ~np.isfinite(block).reshape(len(sel), -1).all(axis=1)
                if bad.any():
                    raise DataError(f"{path}: NaN or inf values in data row {sel[bad][0]}")
                block = np.maximum(block, 0.0)
                lo, hi = min(lo, block.min()), max(hi, block.max())
        return minmax_affine(lo, hi, f"the TaxiBJ training part of {self.files[0].parent}")

    # --- OpenSTL dataset.npz -------------------------------------------------------------
    def _open_npz(self, path: Path, data_min: float, data_max: float | None) -> None:
        self.files, self.kind = [path], "npz"
        self.split_rule = "OpenSTL's X_train/Y_train (train) and X_test/Y_test (val, test)"
        keys = npz_keys(path)
        names = ("X_test", "Y_test") if self.split != "train" else ("X_train", "Y_train")
        missing = [n for n in names if n not in keys]
        if missing:
            raise DataError(f"{path}: no key {missing[0]!r}; keys: {', '.join(keys)}")
        self.x, self.y = (npz_member(path, n) for n in names)  # mapped when stored
        for n, a in zip(names, (self.x, self.y), strict=True):
            if a.ndim != 5:
                raise DataError(f"{path}: {n} must be (N, T, 2, H, W), got shape {a.shape}")
        if len(self.x) != len(self.y) or self.x.shape[2:] != self.y.shape[2:]:
            raise DataError(
                f"{path}: {names[0]} {self.x.shape} and {names[1]} {self.y.shape} differ"
            )
        t_in, t_out = self.x.shape[1], self.y.shape[1]
        if (self.seq_len, self.context_len) != (t_in + t_out, t_in):
            raise DataError(
                f"{path}: holds {t_in} -> {t_out} windows; seq_len={self.seq_len}, "
                f"context_len={self.context_len} must be {t_in + t_out}, {t_in}"
            )
        self.frame_shape = tuple(int(v) for v in self.x.shape[2:])  # type: ignore[assignment]
        self.value_range = (0.0, 1.0)
        if data_max is None:  # the scaler is unknown: back to the file's own [-1, 1] units
            self.normalizer, self.units = Affine(2.0, -1.0), "OpenSTL scaled flow in [-1, 1]"
        else:
            if not float(data_max) > float(data_min):
                raise DataError(f"{path}: data_max {data_max} must exceed data_min {data_min}")
            self.normalizer = Affine(float(data_max) - float(data_min), float(data_min))

    # --- items ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.x) if self.kind == "npz" else len(self.starts)

    def _where(self, i: int) -> str:
        if self.kind == "npz":
            return f"{self.files[0]} window {i}"
        p = int(self.starts[i])
        rows = self.row[p : p + self.seq_len]
        return f"{self.files[self.file_id[p]]} rows {rows[0]}-{rows[-1]} (window {i})"

    def time_index(self, i: int) -> np.ndarray:
        """Slot numbers (day ordinal * 48 + slot) of the frames of window i (h5 files only)."""
        p = int(self.starts[i])
        return self.key[p : p + self.seq_len]

    def _read(self, positions: np.ndarray) -> np.ndarray:
        """Flows (n, 2, H, W) at positions of the time-ordered frames, in data units."""
        fid, rows = self.file_id[positions], self.row[positions]
        out = np.empty((len(positions), *self.flow_shape), dtype=np.float64)
        for k in np.unique(fid):
            sel = np.flatnonzero(fid == k)
            r = rows[sel]
            data = self._file(int(k))["data"]
            if np.all(np.diff(r) == 1):  # the usual case: one contiguous slice
                out[sel] = data[int(r[0]) : int(r[-1]) + 1]
            else:
                out[sel] = np.stack([data[int(j)] for j in r])
        return out

    def _load(self, i: int) -> np.ndarray:
        if self.kind == "npz":
            x = np.concatenate([self.x[i], self.y[i]]).astype(np.float32)
            return (x + 1.0) / 2.0  # OpenSTL: [-1, 1] -> [0, 1]
        p = int(self.starts[i])
        where = np.arange(p, p + self.seq_len)
        out = self._read(where)  # (T, C, H, W)
        refs = self.references[where]  # (T, period + trend frames)
        if refs.shape[1]:
            past = self._read(refs.reshape(-1)).reshape(self.seq_len, -1, *self.flow_shape[1:])
            out = np.concatenate([out, past], axis=1)
        if not np.isfinite(out).all():
            what = " or its period and trend frames" if refs.shape[1] else ""
            raise DataError(f"{self._where(i)}{what} contains NaN or inf values")
        out = self.normalizer.from_units(np.maximum(out, 0.0))
        if self.externals is not None:  # constant maps of the next slot's factors
            e = self.externals(self.key[where] + 1)[:, :, None, None]
            out = np.concatenate([out, np.broadcast_to(e, (*e.shape[:2], *out.shape[2:]))], 1)
        return out.astype(np.float32)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state
