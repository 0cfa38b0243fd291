"""TaxiBJ's time slots, and what ST-ResNet reads besides the recent frames: the frames of the
same slot days and weeks before, and the external factors of a slot (DeepST's features).

Slots are numbered day ordinal * 48 + slot (0-based), so "a day back" is 48 slot numbers back
whatever rows the files hold: a reference slot that is not in the data (a dropped day, a gap
between files) is missing, never replaced by the row that happens to sit 48 rows back.

External factors of a slot, in DeepST's order (E = 11 + weather kinds, 28 for TaxiBJ):
weekday one-hot (7, Monday first), 1 on weekdays / 0 on weekends, 1 on holidays (the days
listed in BJ_Holiday.txt), then from BJ_Meteorology.h5 the weather one-hot (17), wind speed
and temperature, both min-max scaled to [0, 1]. As in DeepST, the weather of a slot is the one
recorded in the slot before it (the latest one known when the slot is predicted). Unlike
DeepST, the wind and temperature scalers are fitted on the training part only.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from mimcast.errors import DataError

SLOTS = 48  # half-hour slots per day
DAY, WEEK = SLOTS, 7 * SLOTS
DATE_RE = re.compile(rb"^(\d{8})(\d{2})$")
HOLIDAY_FILE, METEOROLOGY_FILE = "BJ_Holiday.txt", "BJ_Meteorology.h5"
METEOROLOGY_KEYS = ("date", "Weather", "WindSpeed", "Temperature")


def h5py_module():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise DataError("reading TaxiBJ .h5 files needs h5py") from e
    return h5py


def _day(raw: bytes, where: str) -> int:
    try:
        return dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:8])).toordinal()
    except ValueError as e:
        raise DataError(f"{where} is {raw!r}, not a calendar day") from e


def parse_dates(raw: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Day ordinals and 0-based slots of ``YYYYMMDDss`` byte strings (ss = 01..48)."""
    days = np.empty(len(raw), dtype=np.int64)
    slots = np.empty(len(raw), dtype=np.int64)
    cache: dict[bytes, int] = {}
    for k, value in enumerate(raw):
        b = bytes(value) if isinstance(value, bytes) else str(value).encode()
        m = DATE_RE.match(b.strip())
        slot = int(m.group(2)) if m else 0
        if m is None or not 1 <= slot <= SLOTS:
            raise DataError(f"{where}: date {k} is {b!r}, expected YYYYMMDDss with ss 01-48")
        day = m.group(1)
        if day not in cache:
            cache[day] = _day(b, f"{where}: date {k}")
        days[k], slots[k] = cache[day], slot - 1
    return days, slots


def reference_lags(period_days: int, trend_weeks: int) -> np.ndarray:
    """How many slots before a predicted slot its period frames (1..period_days days, newest
    first) and then its trend frames (1..trend_weeks weeks) lie."""
    days = [DAY * j for j in range(1, period_days + 1)]
    return np.array(days + [WEEK * j for j in range(1, trend_weeks + 1)], dtype=np.int64)


def reference_positions(key: np.ndarray, slots: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Positions in the sorted slot numbers `key` of slots[i] - lags[j], -1 where missing."""
    want = slots[:, None] - lags[None, :]
    pos = np.minimum(np.searchsorted(key, want), len(key) - 1)
    return np.where(key[pos] == want, pos, -1)


def all_true_in_windows(ok: np.ndarray, length: int) -> np.ndarray:
    """For each start p of a window of `length`: ok[p : p + length].all()."""
    bad = np.concatenate([[0], np.cumsum(~ok)])
    return bad[length:] - bad[:-length] == 0


def read_holidays(path: Path) -> set[int]:
    """Day ordinals of BJ_Holiday.txt (one YYYYMMDD a line; blank lines allowed)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read the holidays ({e.strerror})") from e
    days = set()
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if not re.fullmatch(rb"\d{8}", text):
            raise DataError(f"{path}: line {n} is {text!r}, expected a day YYYYMMDD")
        days.add(_day(text, f"{path}: line {n}"))
    return days


class Externals:
    """DeepST's external factors of slots, from the holidays and meteorology files of a folder.

    `fit_before`: the first slot number after the training part (the scalers' limit).
    """

    def __init__(self, folder: Path, fit_before: int) -> None:
        for name in (HOLIDAY_FILE, METEOROLOGY_FILE):
            if not (folder / name).is_file():
                raise DataError(f"{folder}: no {name}; the external factors need it")
        self.holidays = read_holidays(folder / HOLIDAY_FILE)
        self._read_meteorology(folder / METEOROLOGY_FILE)
        train = self.key < fit_before
        if not train.any():
            raise DataError(f"{folder / METEOROLOGY_FILE}: no record in the training part")
        self.wind, self.temperature = (_minmax(v, train) for v in (self.wind, self.temperature))
        self.count = 11 + self.weather.shape[1]

    def _read_meteorology(self, path: Path) -> None:
        try:
            with h5py_module().File(path, "r") as f:
                missing = [k for k in METEOROLOGY_KEYS if k not in f]
                if missing:
                    raise DataError(f"{path}: no key {missing[0]!r}; keys: {', '.join(f.keys())}")
                dates, weather, wind, temp = (np.asarray(f[k][()]) for k in METEOROLOGY_KEYS)
        except OSError as e:
            raise DataError(f"{path}: not a readable HDF5 file ({e})") from e
        n = len(dates)
        if weather.ndim != 2 or wind.shape != (n,) or temp.shape != (n,) or len(weather) != n:
            raise DataError(
                f"{path}: expected date (N,), Weather (N, kinds), WindSpeed (N,), Temperature "
                f"(N,); got {dates.shape}, {weather.shape}, {wind.shape}, {temp.shape}"
            )
        values = np.column_stack([weather, wind, temp]).astype(np.float64)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: NaN or inf values in record {np.flatnonzero(bad)[0]}")
        days, slots = parse_dates(dates.reshape(-1), f"{path}:date")
        key = days * SLOTS + slots
        order = np.argsort(key, kind="stable")
        self.key, values = key[order], values[order]
        self.weather, self.wind, self.temperature = values[:, :-2], values[:, -2], values[:, -1]

    def known(self, slots: np.ndarray) -> np.ndarray:
        """Whether the factors of each slot can be made (the slot before it was recorded)."""
        return reference_positions(self.key, slots, np.array([1]))[:, 0] >= 0

    def __call__(self, slots: np.ndarray) -> np.ndarray:
        """(n, count) factors of slot numbers whose `known` is true."""
        days = slots // SLOTS
        weekday = (days - 1) % 7  # ordinal 1 (0001-01-01) was a Monday
        time = np.zeros((len(slots), 8))
        time[np.arange(len(slots)), weekday] = 1.0
        time[:, 7] = weekday < 5
        holiday = np.isin(days, list(self.holidays)).astype(np.float64)[:, None]
        row = reference_positions(self.key, slots, np.array([1]))[:, 0]
        meteo = [self.weather[row], self.wind[row, None], self.temperature[row, None]]
        return np.concatenate([time, holiday, *meteo], axis=1)


def _minmax(values: np.ndarray, fit: np.ndarray) -> np.ndarray:
    lo, hi = values[fit].min(), values[fit].max()
    return (values - lo) / (hi - lo) if hi > lo else values - lo
