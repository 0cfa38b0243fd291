"""The one check of a time axis (data/time_axis.py) and `custom` data on real netCDF files with
axes that run backwards, out of order or unevenly; an empty .npy as custom data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mimcast.data import CustomDataset
from mimcast.data.time_axis import check_time_axis, declared_step, positions
from mimcast.errors import DataError

from ..helpers import assert_one_line_error, listing, run_cli

HALF_HOURS = pd.date_range("2026-06-01", periods=10, freq="30min").values
FIX = "pass --time-step STEP"


def test_an_even_axis_continues_by_its_step() -> None:
    axis = check_time_axis(HALF_HOURS, "f.nc", fix=FIX)
    expected = HALF_HOURS[-1] + np.timedelta64(30, "m") * np.arange(1, 4)
    np.testing.assert_array_equal(axis.after(3), expected)
    hours = np.arange(0, 1, 0.1)  # numbers whose steps differ in their last bits
    np.testing.assert_allclose(check_time_axis(hours, "f.nc", fix=FIX).after(2), [1.0, 1.1])
    np.testing.assert_array_equal(positions(10).after(4), [10, 11, 12, 13])
    days = np.array([dt.datetime(2026, 1, d) for d in (1, 2, 3)], dtype=object)  # as cftime
    assert check_time_axis(days, "f.nc", fix=FIX).after(1)[0] == dt.datetime(2026, 1, 4)


@pytest.mark.parametrize(
    "times, message",
    [
        (np.r_[HALF_HOURS, HALF_HOURS[-1] + np.timedelta64(7, "h")],
         "not evenly spaced (steps of 30 min, then 7 h from 2026-06-01T04:30:00 to "
         "2026-06-01T11:30:00): pass --time-step STEP"),
        (HALF_HOURS[::-1], "not in increasing order (2026-06-01T04:00:00 at index 1 follows "
                           "2026-06-01T04:30:00): sort it first (xarray: ds.sortby('time'))"),
        (HALF_HOURS[[0, 1, 3, 2, 4]], "not in increasing order"),
        (HALF_HOURS[[0, 1, 1, 2]], "not in increasing order"),  # a time given twice
        (np.r_[HALF_HOURS[:3], np.datetime64("NaT")], "a missing time (NaT) at index 3"),
        (np.array(["a", "b"]), "holds <U1 values, not times or numbers"),
    ],
)  # fmt: skip
def test_axes_out_of_order_or_uneven_are_refused(times, message) -> None:
    with pytest.raises(DataError, match="^f.nc: ") as e:
        check_time_axis(times, "f.nc", fix=FIX)
    assert message in str(e.value)


def test_uneven_steps_the_user_accepts() -> None:
    uneven = np.r_[HALF_HOURS, HALF_HOURS[-1] + np.timedelta64(7, "h")]
    axis = check_time_axis(uneven, "f.nc", uneven_ok=True, fix=FIX)
    assert axis.step is None  # the caller says which step is meant
    given = declared_step("30min", uneven, axis, "f.nc")
    assert given.after(1)[0] == uneven[-1] + np.timedelta64(30, "m")
    with pytest.raises(DataError, match="not in increasing order"):  # accepted: uneven only
        check_time_axis(uneven[::-1], "f.nc", uneven_ok=True, fix=FIX)
    even = check_time_axis(HALF_HOURS, "f.nc", fix=FIX)
    with pytest.raises(DataError, match="--time-step 1h: f.nc steps evenly by 30 min"):
        declared_step("1h", HALF_HOURS, even, "f.nc")
    with pytest.raises(DataError, match="holds dates: give a duration such as 30min"):
        declared_step("5", uneven, axis, "f.nc")
    with pytest.raises(DataError, match="holds numbers: give a positive number"):
        declared_step("1h", np.array([0.0, 1.0, 5.0]), axis, "f.nc")
    numbers = np.array([0, 1, 5])
    numeric = check_time_axis(numbers, "f.nc", uneven_ok=True, fix=FIX)
    assert declared_step("1.5", numbers, numeric, "f.nc").after(2).tolist() == [6.5, 8.0]


def _series(path, times: np.ndarray | None, n: int = 40):
    """A netCDF series of n 6x6 frames whose values grow with the index (time index k holds k),
    with the time coordinate `times` (None: a time dimension without a coordinate)."""
    values = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 6, 6))
    coords = {} if times is None else {"time": times}
    da = xr.DataArray(values.copy(), dims=("time", "y", "x"), coords=coords, name="v")
    da.to_dataset().to_netcdf(path, engine="h5netcdf")
    return path


def test_a_reversed_time_axis_is_not_called_chronological(tmp_path, capsys) -> None:
    hours = pd.date_range("2026-01-01", periods=40, freq="h").values
    options = {"seq_len": 4, "context_len": 2}
    reversed_nc = _series(tmp_path / "reversed.nc", hours[::-1])
    before = listing(tmp_path)
    sets = ["--set", "data.options.seq_len=4", "data.options.context_len=2"]
    for args in (["train", "--run-dir", tmp_path / "run", "--steps", 1], ["data", "info"]):
        code, _, err = run_cli(capsys, *args, "--data", "custom", "--data-root", reversed_nc,
                               *sets)  # fmt: skip
        assert_one_line_error(code, err, "the time axis is not in increasing order")
    assert listing(tmp_path) == before  # no run folder made
    with pytest.raises(DataError, match=r"reversed.nc:v: the time axis is not in increasing "
                                        r"order .* sort it first"):  # fmt: skip
        CustomDataset(reversed_nc, "train", **options)
    with pytest.raises(DataError, match="not in increasing order"):  # irregular_time: steps only
        CustomDataset(reversed_nc, "train", irregular_time=True, **options)
    gap = _series(tmp_path / "gap.nc", np.r_[hours[:20], hours[20:] + np.timedelta64(5, "h")])
    with pytest.raises(
        DataError, match=r"steps of 1 h, then 6 h .*: set data.options.irregular_time=true"
    ):
        CustomDataset(gap, "train", **options)
    assert len(CustomDataset(gap, "train", irregular_time=True, **options)) > 0
    sorted_nc = _series(tmp_path / "sorted.nc", hours)  # the same axis in order: trains early
    train = CustomDataset(sorted_nc, "train", **options)
    test = CustomDataset(sorted_nc, "test", **options)
    assert train.split_rule.startswith("chronological")
    assert train.windows[:, 1].max() < test.windows[:, 1].min()
    assert len(CustomDataset(_series(tmp_path / "plain.nc", None), "train", **options)) > 0


def test_an_empty_npy_as_custom_data_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "empty.npy").write_bytes(b"")
    before = listing(tmp_path)
    with pytest.raises(DataError, match=r"empty.npy: not a readable .npy file"):
        CustomDataset(tmp_path / "empty.npy")
    for args in (["train", "--run-dir", tmp_path / "run", "--steps", 1],
                 ["data", "info"]):  # fmt: skip
        code, _, err = run_cli(capsys, *args, "--data", "custom", "--data-root",
                               tmp_path / "empty.npy")  # fmt: skip
        assert_one_line_error(code, err, "empty.npy: not a readable .npy file")
    assert listing(tmp_path) == before  # no run folder made
