"""`predict` from netCDF files whose time axes are uneven, out of order or missing; contexts
shorter than the model's; options the input has no use for; values beyond the training range
(forecast, with a note) against values in other units (refused). Every file is written here
with xarray/h5netcdf; every refusal is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mimcast.data import DataSpec
from mimcast.data.video import write_video

from ..helpers import assert_one_line_error, listing
from ..helpers import run_cli as mimcast

SMALL = [
    "model.hidden=[4,4]", "model.filter_size=3", "model.patch_size=2", "train.batch_size=2",
    "train.val_every=2", "train.val_sequences=2", "train.checkpoint_every=2",
    "eval.batch_size=2", "eval.num_sequences=2", "eval.show=1",
]  # fmt: skip
HOURS = pd.date_range("2026-06-01", periods=80, freq="h").values


def rain(path: Path, times: np.ndarray | None, values: np.ndarray | None = None) -> Path:
    """A netCDF file of 12x12 rain in mm/h (random in [0, 113] unless `values` are given) with
    the time coordinate `times` (None: a time dimension without a coordinate of its own)."""
    n = len(times) if times is not None else len(values)
    if values is None:
        values = np.random.default_rng(n).random((n, 12, 12)) * 113
    coords = {"y": np.linspace(50, 51, 12), "x": np.linspace(4, 5, 12)}
    if times is not None:
        coords["time"] = times
    da = xr.DataArray(values.astype(np.float32), dims=("time", "y", "x"), coords=coords,
                      name="rain", attrs={"units": "mm/h"})  # fmt: skip
    da.to_dataset().to_netcdf(path, engine="h5netcdf")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """Two runs on an hourly rain file: context_len 3 and context_len 1."""
    from mimcast.cli import main

    root = tmp_path_factory.mktemp("rain")
    source = rain(root / "rain.nc", HOURS)
    made = {}
    for context, seq in ((3, 6), (1, 3)):
        made[context] = root / f"run{context}"
        lengths = [f"data.options.seq_len={seq}", f"data.options.context_len={context}"]
        argv = ["train", "--run-dir", made[context], "--data", "custom", "--data-root", source,
                "--steps", 2, "--no-eval", "--set", *SMALL, *lengths]  # fmt: skip
        assert main([str(a) for a in argv]) == 0
    return made


def predict(capsys, run: Path, given: Path, output: Path, *extra) -> tuple[int, str, str]:
    return mimcast(capsys, "predict", "--run-dir", run, "--input", given, "--horizon", 4,
                   "--output", output, *extra)  # fmt: skip


def times_of(path: Path) -> np.ndarray:
    with xr.open_dataset(path) as ds:
        return ds["time"].values


# ---------------- time axes (item 2)
def test_an_uneven_last_step_is_refused_or_continued_by_the_step_given(runs, tmp_path, capsys):
    half_hours = pd.date_range("2026-06-01", periods=9, freq="30min").values
    uneven = rain(
        tmp_path / "uneven.nc", np.r_[half_hours, half_hours[-1] + np.timedelta64(7, "h")]
    )
    before = listing(tmp_path)
    code, _, err = predict(capsys, runs[3], uneven, tmp_path / "p.nc")
    assert_one_line_error(code, err, "not evenly spaced (steps of 30 min, then 7 h from "
                                     "2026-06-01T04:00:00 to 2026-06-01T11:00:00): pass "
                                     "--time-step STEP")  # fmt: skip
    for step, message in [("5", "holds dates: give a duration"), ("0h", "give a duration")]:
        code, _, err = predict(capsys, runs[3], uneven, tmp_path / "p.nc", "--time-step", step)
        assert_one_line_error(code, err, message)
    assert listing(tmp_path) == before
    code, _, err = predict(capsys, runs[3], uneven, tmp_path / "p.nc", "--time-step", "30min")
    assert code == 0, err
    last = np.datetime64("2026-06-01T11:00")
    np.testing.assert_array_equal(times_of(tmp_path / "p.nc"),
                                  last + np.timedelta64(30, "m") * np.arange(1, 5))  # fmt: skip
    even = rain(tmp_path / "even.nc", HOURS[:10])  # its own step wins: the flag may not differ
    code, _, err = predict(capsys, runs[3], even, tmp_path / "q.nc", "--time-step", "30min")
    assert_one_line_error(code, err, "--time-step 30min: ")
    assert "steps evenly by 1 h" in err and not (tmp_path / "q.nc").exists()


def test_a_time_axis_out_of_order_is_refused(runs, tmp_path, capsys) -> None:
    order = np.random.default_rng(0).permutation(10)
    shuffled = rain(tmp_path / "shuffled.nc", HOURS[:10][order])
    backwards = rain(tmp_path / "backwards.nc", HOURS[:10][::-1])
    before = listing(tmp_path)
    for given in (shuffled, backwards):
        for extra in ([], ["--time-step", "1h"]):  # uneven steps may be accepted, disorder not
            code, _, err = predict(capsys, runs[3], given, tmp_path / "p.zarr", *extra)
            assert_one_line_error(code, err, "the time axis is not in increasing order")
            assert "sort it first (xarray: ds.sortby('time'))" in err
    assert listing(tmp_path) == before


def test_without_a_time_coordinate_the_times_continue_from_the_length(runs, tmp_path, capsys):
    values = np.random.default_rng(0).random((10, 12, 12)) * 100
    plain = rain(tmp_path / "plain.nc", None, values)
    code, _, err = predict(capsys, runs[3], plain, tmp_path / "p.nc")
    assert code == 0, err
    np.testing.assert_array_equal(times_of(tmp_path / "p.nc"), [10, 11, 12, 13])
    code, _, err = predict(capsys, runs[3], plain, tmp_path / "q.nc", "--time-step", "1")
    assert_one_line_error(code, err, "has no time coordinate")


def test_a_context_of_one_takes_the_step_from_the_files_own_axis(runs, tmp_path, capsys):
    ten_minutes = pd.date_range("2026-07-01", periods=600, freq="10min").values
    long = rain(tmp_path / "long.nc", ten_minutes)
    code, _, err = predict(capsys, runs[1], long, tmp_path / "p.nc")
    assert code == 0, err
    expected = ten_minutes[-1] + np.timedelta64(10, "m") * np.arange(1, 5)
    np.testing.assert_array_equal(times_of(tmp_path / "p.nc"), expected)
    one = rain(tmp_path / "one.nc", ten_minutes[:1])  # one time: no step to take
    code, _, err = predict(capsys, runs[1], one, tmp_path / "q.nc")
    assert_one_line_error(code, err, "the input's time axis holds one time, so the forecast's "
                                     "times are unknown: pass --time-step STEP")  # fmt: skip
    assert not (tmp_path / "q.nc").exists()
    assert predict(capsys, runs[1], one, tmp_path / "q.npy")[0] == 0  # arrays carry no times
    code, _, err = predict(capsys, runs[1], one, tmp_path / "q.nc", "--time-step", "10min")
    assert code == 0, err
    assert times_of(tmp_path / "q.nc")[0] == ten_minutes[0] + np.timedelta64(10, "m")


# ---------------- short contexts, unused options (item 6)
def test_a_context_shorter_than_the_models_is_refused(runs, tmp_path, capsys) -> None:
    frames = np.random.default_rng(0).random((1, 1, 12, 12)) * 100
    np.save(tmp_path / "one.npy", frames.astype(np.float32))
    write_video(tmp_path / "one.mp4", np.full((1, 1, 12, 12), 90, np.uint8), fps=4)
    two = rain(tmp_path / "two.nc", HOURS[:2])
    before = listing(tmp_path)
    for given, n in [(tmp_path / "one.npy", "1 frame"), (tmp_path / "one.mp4", "1 frame"),
                     (two, "2 frames")]:  # fmt: skip
        code, _, err = predict(capsys, runs[3], given, tmp_path / "p.npy")
        assert_one_line_error(code, err, f"{n} of context, but the model was trained on 3 "
                                         "frames (context_len): give at least 3")  # fmt: skip
    assert listing(tmp_path) == before
    np.save(tmp_path / "three.npy", np.repeat(frames, 3, axis=0).astype(np.float32))
    assert predict(capsys, runs[3], tmp_path / "three.npy", tmp_path / "p.npy")[0] == 0


def test_options_the_input_has_no_use_for_are_refused(runs, tmp_path, capsys) -> None:
    ctx = (np.random.default_rng(0).random((3, 1, 12, 12)) * 100).astype(np.float32)
    np.save(tmp_path / "c.npy", ctx)
    write_video(tmp_path / "c.mp4", np.full((3, 1, 12, 12), 90, np.uint8), fps=4)
    np.savez(tmp_path / "two.npz", a=ctx, b=ctx[::-1].copy())
    before = listing(tmp_path)
    cases = [
        ("c.npy", ["--variable", "rain"], "--variable rain: "),
        ("c.mp4", ["--variable", "rain"], "is a video, which holds one array"),
        ("c.npy", ["--time-step", "1h"], "--time-step is for netCDF/Zarr input"),
        ("two.npz", ["--variable", "c"], "no variable 'c'; it has a, b"),
        ("two.npz", [], "holds arrays ['a', 'b']: pass --variable NAME"),
    ]
    for name, extra, message in cases:
        code, _, err = predict(capsys, runs[3], tmp_path / name, tmp_path / "p.npy", *extra)
        assert_one_line_error(code, err, message)
    assert listing(tmp_path) == before
    code, _, err = predict(capsys, runs[3], tmp_path / "two.npz", tmp_path / "b.npy",
                           "--variable", "b")  # fmt: skip
    assert code == 0, err
    assert predict(capsys, runs[3], tmp_path / "c.npy", tmp_path / "r.npy")[0] == 0
    reversed_pred = np.load(tmp_path / "b.npy")
    assert not np.array_equal(reversed_pred, np.load(tmp_path / "r.npy"))  # b was read, not a


# ---------------- new extremes against other units (item 9)
def training_range(run: Path) -> tuple[float, float]:
    return DataSpec.from_dict(json.loads((run / "data.json").read_text()), "data.json").data_range()


def test_values_beyond_the_training_range_are_forecast_with_a_note(runs, tmp_path, capsys):
    lo, hi = training_range(runs[3])
    rng = np.random.default_rng(3)
    storm = 10.9 + rng.random((10, 12, 12)) * (122.1 - 10.9)  # the issue's [10.9, 122.1] mm/h
    storm[-1, 0, :2] = 10.9, 122.1  # in the context: the last 3 steps
    given = rain(tmp_path / "storm.nc", HOURS[:10], storm)
    code, out, err = predict(capsys, runs[3], given, tmp_path / "p.nc")
    assert code == 0, err
    note = (f"note: {given}: values span [10.9, 122.1], beyond the training range [{lo:.4g}, "
            f"{hi:.4g}] of mm/h; forecasting from them, within that range")  # fmt: skip
    assert note in out
    with xr.open_dataset(tmp_path / "p.nc") as p:
        assert p["rain"].shape == (4, 12, 12)
        assert lo <= float(p["rain"].min()) and float(p["rain"].max()) <= hi
    near = rain(tmp_path / "near.nc", HOURS[:10], hi + 5 + rng.random((10, 12, 12)) * 20)
    code, out, err = predict(capsys, runs[3], near, tmp_path / "q.nc")  # wholly above, but near
    assert code == 0 and "beyond the training range" in out, err
    code, out, err = predict(capsys, runs[3], rain(tmp_path / "calm.nc", HOURS[:10],
                                                   storm / 10), tmp_path / "r.nc")  # fmt: skip
    assert code == 0 and "note" not in out, err  # a calm day, inside the range


def test_values_that_look_like_other_units_are_refused(runs, tmp_path, capsys) -> None:
    lo, hi = training_range(runs[3])
    base = np.random.default_rng(4).random((3, 1, 12, 12)) * 100
    cases = {
        "tenfold.npy": (base * 12, "far from the range"),  # mm/h x 10: spread 10x wider
        "kelvin.npy": (base + 273.15, "far from the range"),  # an offset of other units
        "below.npy": (base - 400, "far from the range"),
        "unit.npy": (base / 100, "pass --input-units model"),  # the model's [0, 1]
    }
    for name, (values, _) in cases.items():
        np.save(tmp_path / name, values.astype(np.float32))
    before = listing(tmp_path)
    for name, (_, message) in cases.items():
        code, _, err = predict(capsys, runs[3], tmp_path / name, tmp_path / "p.npy")
        assert_one_line_error(code, err, message)
        if message == "far from the range":
            assert f"the range [{lo:.4g}, {hi:.4g}] of mm/h the model was trained on: wrong " \
                   "units? convert them" in err  # fmt: skip
    code, _, err = predict(
        capsys, runs[3], tmp_path / "kelvin.npy", tmp_path / "p.npy", "--input-units", "model"
    )  # pixels of 0-255 for [0, 1] model units
    assert_one_line_error(code, err, "of model units the model was trained on: wrong units?")
    assert listing(tmp_path) == before
    np.save(tmp_path / "model.npy", (base / 80).astype(np.float32))  # up to 1.25: a new extreme
    code, out, err = predict(capsys, runs[3], tmp_path / "model.npy", tmp_path / "m.npy",
                             "--input-units", "model")  # fmt: skip
    assert code == 0 and "beyond the training range [0, 1] of model units" in out, err
    assert np.load(tmp_path / "m.npy").max() <= 1.0
