"""One check of a time axis, shared by `custom` data (its windows and chronological split) and
`predict` (the times of a forecast): the axis runs forward in equal steps, or the user says
otherwise.

A window of frames stands for equal steps of time. An axis that runs backwards makes a
"chronological" split train on the latest times; a repeated time or a changed step makes a
window span a gap, and a forecast's times continue by a step the data do not have (30-minute
steps, then one of 7 hours). So both are refused with the way out in the message: sort the
file, or say that uneven steps are meant (`custom`: ``irregular_time``; `predict`:
``--time-step STEP``, the step its forecast goes on by).

Times are numbers, numpy datetimes or cftime dates (any calendar): only differences and
comparisons of them are used.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mimcast.errors import DataError

SORT_HINT = "sort it first (xarray: ds.sortby('time'))"
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}
_STEP = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|min|h|d)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TimeAxis:
    """A checked time axis: its last time and the step that continues it (None when it
    holds one time, so that no step can be known)."""

    last: Any
    step: Any | None

    def after(self, n: int) -> np.ndarray:
        """The `n` times that follow the axis."""
        if self.step is None:
            raise DataError("the time axis holds one time: no step to continue it by")
        return np.asarray([self.last + self.step * k for k in range(1, n + 1)])


def positions(n: int) -> TimeAxis:
    """The axis of a time dimension without a coordinate: the positions 0 .. n-1."""
    return TimeAxis(last=n - 1, step=1)


def check_time_axis(times: Any, where: str, *, uneven_ok: bool = False, fix: str) -> TimeAxis:
    """`times` checked to increase strictly, and (unless `uneven_ok`) by one step.

    `fix` is what the user can do about uneven steps (named in the message). The step of an
    uneven axis that is accepted is None: the caller knows which step is meant."""
    times = np.asarray(times)
    if times.ndim != 1 or len(times) == 0:
        raise DataError(f"{where}: the time coordinate is shaped {times.shape}, not one axis")
    if len(times) == 1:
        return TimeAxis(times[-1], None)
    steps = _steps(times, where)
    forward = steps > steps[0] - steps[0]  # zero in the steps' own kind (number, timedelta)
    if not forward.all():
        i = int(np.argmin(forward))
        raise DataError(
            f"{where}: the time axis is not in increasing order ({_show(times[i + 1])} at "
            f"index {i + 1} follows {_show(times[i])}): {SORT_HINT}"
        )
    even = _equal(steps, steps[0])
    if not even.all() and not uneven_ok:
        i = int(np.argmin(even))
        raise DataError(
            f"{where}: the time axis is not evenly spaced (steps of {_show(steps[0])}, then "
            f"{_show(steps[i])} from {_show(times[i])} to {_show(times[i + 1])}): {fix}"
        )
    return TimeAxis(times[-1], steps[0] if even.all() else None)


def _steps(times: np.ndarray, where: str) -> np.ndarray:
    if times.dtype.kind in "mM" and np.isnat(times).any():
        raise DataError(f"{where}: the time axis has a missing time (NaT) at index "
                        f"{int(np.argmax(np.isnat(times)))}")  # fmt: skip
    if times.dtype.kind == "f" and not np.isfinite(times).all():
        raise DataError(f"{where}: the time axis has a NaN or inf at index "
                        f"{int(np.argmin(np.isfinite(times)))}")  # fmt: skip
    try:
        return times[1:] - times[:-1]
    except TypeError as e:
        raise DataError(
            f"{where}: the time coordinate holds {times.dtype} values, not times or numbers"
        ) from e


def _equal(steps: np.ndarray, step: Any) -> np.ndarray:
    if steps.dtype.kind == "f":  # numbers like 0.1 * k differ in their last bits
        return np.isclose(steps, step, rtol=1e-6, atol=0.0)
    return np.asarray(steps == step, dtype=bool)


def declared_step(text: str, times: Any, axis: TimeAxis, where: str) -> TimeAxis:
    """`axis` continued by the step the user gave (`--time-step`): a duration ("30min",
    "1h", "1.5h", "1d", "90s") for an axis of dates, a number for an axis of numbers. An
    evenly spaced axis must agree with it: the data's own step is not overridden."""
    times = np.asarray(times)
    step = _parse_step(text, times, where)
    if axis.step is not None and not _equal(np.asarray([axis.step]), step).all():
        raise DataError(
            f"--time-step {text}: {where} steps evenly by {_show(axis.step)}; the forecast "
            "continues by that step (leave --time-step out)"
        )
    return TimeAxis(axis.last, step)


def _parse_step(text: str, times: np.ndarray, where: str) -> Any:
    m = _STEP.match(str(text))
    dates = times.dtype.kind == "M" or times.dtype == object
    if m is None or float(m.group(1)) <= 0 or (m.group(2) is None) == dates:
        kind = "a duration such as 30min, 1h, 1d or 90s" if dates else "a positive number"
        raise DataError(f"--time-step {text}: {where} holds {_kind(times)}: give {kind}")
    if not dates:  # an integer axis stays integer where the step allows
        value = float(m.group(1))
        return int(value) if times.dtype.kind in "iu" and value.is_integer() else value
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    if times.dtype == object:  # cftime dates add datetime.timedelta
        return dt.timedelta(seconds=seconds)
    return np.timedelta64(round(seconds * 1000), "ms")


def _kind(times: np.ndarray) -> str:
    return "numbers" if times.dtype.kind in "iuf" else "dates"


def _show(v: Any) -> str:
    """A time or a step as a person writes it: 2026-06-01T07:00:00, 30 min, 7 h, 0.5."""
    if isinstance(v, np.datetime64):
        return str(v.astype("datetime64[s]"))
    if isinstance(v, np.timedelta64 | dt.timedelta):
        seconds = v / np.timedelta64(1, "s") if isinstance(v, np.timedelta64) else v.total_seconds()
        return _duration(float(seconds))
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    return str(v)


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
