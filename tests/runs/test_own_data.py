"""The user's own data end to end, on files the tests write in the real formats: videos and
PNG folders train and predict to videos; 59x59 frames with patch 4; netCDF in, netCDF out;
units that cannot be mixed up; data roots as folders; one line for every bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from mimcast.data.video import read_frames, write_video
from mimcast.runs.train import FEW_WINDOWS

from ..helpers import assert_one_line_error, listing
from ..helpers import run_cli as mimcast
from ..tiny import tiny_sets

SMALL = [
    "model.hidden=[4,4]", "model.filter_size=3", "train.batch_size=2", "train.val_every=2",
    "train.val_sequences=2", "train.checkpoint_every=2", "eval.batch_size=2",
    "eval.num_sequences=2", "eval.show=1", "data.options.seq_len=6",
    "data.options.context_len=3",
]  # fmt: skip


def train(capsys, run_dir: Path, data: str, root: Path, *sets: str) -> tuple[int, str, str]:
    return mimcast(capsys, "train", "--run-dir", run_dir, "--data", data, "--data-root", root,
                   "--steps", 2, "--set", *SMALL, *sets)  # fmt: skip


def waves(n: int, h: int = 20, w: int = 20) -> np.ndarray:
    """uint8 (n, 1, h, w): a wave drifting right, smooth enough for lossy codecs."""
    yy, xx = np.mgrid[:h, :w]
    frames = [128 + 100 * np.sin((xx + 0.5 * yy + 2 * k) / 3.0) for k in range(n)]
    return np.stack(frames).astype(np.uint8)[:, None]


# ---------------- videos and frame folders
@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_a_video_trains_and_predicts_to_video_and_gif(tmp_path, capsys, ext) -> None:
    clip = tmp_path / f"clip{ext}"
    write_video(clip, waves(60), fps=8)
    code, _, err = train(capsys, tmp_path / "run", "video", clip, "model.patch_size=4")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "data.json").read_text())["frame_shape"] == [1, 20, 20]
    out = {k: tmp_path / f"pred{k}" for k in (".mp4", ".gif", ".npy")}
    for target in out.values():
        code, stdout, err = mimcast(capsys, "predict", "--run-dir", tmp_path / "run", "--input",
                                    clip, "--horizon", 5, "--output", target)  # fmt: skip
        assert code == 0 and "(5, 1, 20, 20)" in stdout, err
    pred = np.load(out[".npy"])  # pixels 0-255, the video's own units
    assert pred.shape == (5, 1, 20, 20) and pred.min() >= 0 and pred.max() <= 255
    video = read_frames(out[".mp4"], size=None, fit="resize", channels=1)
    assert video.shape == (5, 1, 20, 20)
    assert np.abs(video.astype(float) - pred).mean() < 8  # the same forecast, lossy-coded
    with Image.open(out[".gif"]) as gif:  # 5 frames (Pillow merges identical neighbours)
        assert gif.size == (20, 20) and 1 <= gif.n_frames <= 5


@pytest.mark.parametrize("n_frames", [60, 150])
def test_a_short_clip_is_told_it_gives_few_training_windows(tmp_path, capsys, n_frames) -> None:
    clip = tmp_path / "clip.avi"
    write_video(clip, waves(n_frames), fps=8)
    code, out, err = train(capsys, tmp_path / "run", "video", clip, "model.patch_size=4")
    assert code == 0, err
    windows = int(re.search(r"(\d+) train sequences", out).group(1))
    note = f"note: only {windows} training windows"
    assert (note in out) == (windows < FEW_WINDOWS), out  # 60 frames: 43 windows; 150: 115


def test_a_folder_of_png_frames_trains(tmp_path, capsys) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(waves(60, 16, 24)):
        Image.fromarray(frame[0]).save(folder / f"{k:04d}.png")
    code, out, err = train(capsys, tmp_path / "run", "video", folder, "model.patch_size=2")
    assert code == 0 and "checkpoint" in out, err
    spec = json.loads((tmp_path / "run" / "data.json").read_text())
    assert spec["frame_shape"] == [1, 16, 24] and spec["units_scale"] == [255.0]


# ---------------- any frame size
def test_59x59_frames_with_patch_4_train_evaluate_and_predict(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    series = rng.random((60, 59, 59)).astype(np.float32) * 10 + 5  # data units: an offset
    np.save(tmp_path / "odd.npy", series)
    run = tmp_path / "run"
    code, _, err = train(capsys, run, "custom", tmp_path / "odd.npy", "model.patch_size=4")
    assert code == 0, err
    model = json.loads((run / "model.json").read_text())
    assert (model["height"], model["width"], model["patch_size"]) == (59, 59, 4)
    assert model["pad_mode"] == "replicate"  # the run records how frames are padded
    code, out, err = mimcast(capsys, "evaluate", "--run-dir", run)
    assert code == 0 and "mean" in out, err
    # sums over the 59 x 59 original pixels (not the 60 x 60 padded ones), and per pixel in the
    # data's units: the scale squared, the offset cancelling out of every difference
    scale = json.loads((run / "data.json").read_text())["units_scale"][0]
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())["per_frame"]
    m = {k: np.array(v) for k, v in m.items()}
    np.testing.assert_allclose(m["mse"], m["mse_pixel"] * 59 * 59, rtol=1e-6)
    np.testing.assert_allclose(m["mae"], m["mae_pixel"] * 59 * 59, rtol=1e-6)
    np.testing.assert_allclose(m["mse_units"], m["mse_pixel"] * scale**2, rtol=1e-4)
    np.testing.assert_allclose(m["mae_units"], m["mae_pixel"] * scale, rtol=1e-4)
    assert scale == pytest.approx(10, rel=1e-2)
    np.save(tmp_path / "ctx.npy", series[-3:, None])
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", tmp_path / "ctx.npy",
                           "--horizon", 4, "--output", tmp_path / "p.npy")  # fmt: skip
    assert code == 0, err
    assert np.load(tmp_path / "p.npy").shape == (4, 1, 59, 59)


# ---------------- netCDF in, netCDF out
@pytest.fixture(scope="module")
def nc_run(tmp_path_factory) -> tuple[Path, Path, xr.Dataset]:
    """A run trained on a netCDF series of hourly rain on a y/x grid, and that file."""
    from mimcast.cli import main

    root = tmp_path_factory.mktemp("nc")
    t = pd.date_range("2026-06-01", periods=80, freq="h")
    rng = np.random.default_rng(1)
    rain = xr.DataArray(
        (rng.random((80, 12, 12)) * 40).astype(np.float32),
        dims=("time", "y", "x"),
        coords={"time": t, "y": np.linspace(50, 51, 12), "x": np.linspace(4, 5, 12)},
        name="rain", attrs={"units": "mm/h", "long_name": "rain rate"},
    )  # fmt: skip
    ds = rain.to_dataset()
    ds.attrs["source"] = "a radar"
    ds.to_netcdf(root / "rain.nc", engine="h5netcdf")
    run = root / "run"
    sets = [*SMALL, "model.patch_size=2"]  # units: the variable's own (mm/h)
    argv = ["train", "--run-dir", str(run), "--data", "custom", "--data-root",
            str(root / "rain.nc"), "--steps", "2", "--set", *sets]  # fmt: skip
    assert main(argv) == 0
    return run, root / "rain.nc", ds


def test_netcdf_in_gives_netcdf_out_continuing_time(nc_run, tmp_path, capsys) -> None:
    run, source, ds = nc_run
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", source, "--horizon",
                           4, "--output", tmp_path / "p.nc")  # fmt: skip
    assert code == 0, err
    with xr.open_dataset(tmp_path / "p.nc") as out:
        pred = out["rain"]
        assert pred.dims == ("time", "y", "x") and pred.shape == (4, 12, 12)
        step = np.timedelta64(1, "h")
        expected = ds.time.values[-1] + step * np.arange(1, 5)
        np.testing.assert_array_equal(pred.time.values, expected)
        np.testing.assert_array_equal(pred.y.values, ds.y.values)
        assert pred.attrs["units"] == "mm/h" and out.attrs["source"] == "a radar"
        values = pred.values
    np.save(tmp_path / "ctx.npy", ds["rain"].values[-3:, None])  # the same last 3 frames
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", tmp_path / "ctx.npy",
                           "--horizon", 4, "--output", tmp_path / "p.npy")  # fmt: skip
    assert code == 0, err
    np.testing.assert_allclose(values, np.load(tmp_path / "p.npy")[:, 0], rtol=1e-6)
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", source, "--horizon",
                           4, "--output", tmp_path / "p.zarr")  # fmt: skip
    assert code == 0, err
    np.testing.assert_allclose(xr.open_zarr(tmp_path / "p.zarr")["rain"].values, values)
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", source, "--horizon",
                           2, "--output", tmp_path / "p.zarr", "--overwrite")  # fmt: skip
    assert code == 0 and xr.open_zarr(tmp_path / "p.zarr")["rain"].shape[0] == 2, err


def test_zarr_and_hdf5_in_with_one_variable_among_several(nc_run, tmp_path, capsys) -> None:
    """Zarr in (the last context_len steps of --variable), HDF5 in and out (all its frames; the
    same dataset name, attributes and rank): the forecast of the same 3 frames as from netCDF."""
    run, source, ds = nc_run

    def predict(*args) -> tuple[int, str]:
        code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--horizon", 4, *args)
        return code, err

    assert predict("--input", source, "--output", tmp_path / "p.npy")[0] == 0
    want = np.load(tmp_path / "p.npy")[:, 0]  # (4, 12, 12) mm/h
    two = ds.assign(other=ds["rain"] * 0 + 1.0)
    two.to_zarr(tmp_path / "two.zarr")
    code, err = predict("--input", tmp_path / "two.zarr", "--output", tmp_path / "z.nc")
    assert_one_line_error(code, err, "2 variables (other, rain): name one with --variable")
    code, err = predict("--input", tmp_path / "two.zarr", "--variable", "rain", "--output",
                        tmp_path / "z.nc")  # fmt: skip
    assert code == 0, err
    with xr.open_dataset(tmp_path / "z.nc") as out:
        np.testing.assert_allclose(out["rain"].values, want, rtol=1e-6)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("radar/rain", data=ds["rain"].values[-3:])  # (T, H, W)
        f["radar/rain"].attrs["units"] = "mm/h"
        f.create_dataset("radar/quality", data=np.ones((3, 12, 12), np.float32))
    code, err = predict("--input", tmp_path / "in.h5", "--variable", "radar/rain", "--output",
                        tmp_path / "out.h5")  # fmt: skip
    assert code == 0, err
    with h5py.File(tmp_path / "out.h5", "r") as f:
        names = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
        assert names == ["radar/rain"] and dict(f["radar/rain"].attrs) == {"units": "mm/h"}
        np.testing.assert_allclose(f["radar/rain"][()], want, rtol=1e-6)  # rank 3, as given


def test_a_folder_mimcast_did_not_write_is_not_replaced(nc_run, tmp_path, capsys) -> None:
    run, source, ds = nc_run
    ds.to_zarr(tmp_path / "theirs.zarr")  # the user's own store, in the output's place
    before = listing(tmp_path)
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", source, "--horizon",
                           2, "--output", tmp_path / "theirs.zarr", "--overwrite")  # fmt: skip
    assert_one_line_error(code, err, "is a folder mimcast did not write")
    assert listing(tmp_path) == before


# ---------------- units that cannot be mixed up
@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory) -> Path:
    from mimcast.cli import main

    run = tmp_path_factory.mktemp("units") / "run"
    assert main(["train", "--run-dir", str(run), "--steps", "2", "--set", *tiny_sets()]) == 0
    return run


def test_a_0_1_context_for_a_0_255_run_needs_input_units_model(mnist_run, tmp_path, capsys):
    frames = np.random.default_rng(0).random((3, 1, 32, 32)).astype(np.float32)  # in [0, 1]
    np.save(tmp_path / "unit.npy", frames)
    np.save(tmp_path / "pixels.npy", frames * 255)
    before = listing(tmp_path)
    args = ["predict", "--run-dir", mnist_run, "--horizon", 3, "--input", tmp_path / "unit.npy"]
    code, _, err = mimcast(capsys, *args, "--output", tmp_path / "a.npy")
    assert_one_line_error(code, err, "pass --input-units model")
    assert listing(tmp_path) == before
    code, _, err = mimcast(capsys, *args, "--output", tmp_path / "a.npy", "--input-units", "model")
    assert code == 0, err
    args[-1] = tmp_path / "pixels.npy"
    code, _, err = mimcast(capsys, *args, "--output", tmp_path / "b.npy")
    assert code == 0, err
    model_units, pixels = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert model_units.max() <= 1.0  # answered in the units it was asked in
    np.testing.assert_allclose(model_units * 255, pixels, rtol=1e-4, atol=1e-3)
    np.save(tmp_path / "u8.npy", (frames * 255).astype(np.uint8))  # 8-bit data: accepted
    args[-1] = tmp_path / "u8.npy"
    assert mimcast(capsys, *args, "--output", tmp_path / "c.npy")[0] == 0


@pytest.mark.parametrize(("given", "written"), [(".mov", ".avi"), (".mkv", ".mkv"),
                                              (".webm", ".webm")])  # fmt: skip
def test_a_video_context_is_fitted_from_its_last_frames(mnist_run, tmp_path, capsys, given,
                                                        written) -> None:  # fmt: skip
    """A 40 x 48 clip for a 32 x 32 model: its last context_len frames, resized, are the
    context (the same forecast as from those frames as an array); the forecast as a video."""
    clip = tmp_path / f"clip{given}"
    write_video(clip, waves(12, 40, 48), fps=8)
    frames = read_frames(clip, size=(32, 32), fit="resize", channels=1)
    np.save(tmp_path / "last.npy", frames[-3:].astype(np.float32))
    outputs = {}
    for source, target in ((clip, "v.npy"), (tmp_path / "last.npy", "a.npy"),
                           (clip, f"p{written}")):  # fmt: skip
        code, stdout, err = mimcast(capsys, "predict", "--run-dir", mnist_run, "--input", source,
                                    "--horizon", 4, "--output", tmp_path / target)  # fmt: skip
        assert code == 0 and "(4, 1, 32, 32)" in stdout, err
        outputs[target] = tmp_path / target
    want = np.load(outputs["a.npy"])
    np.testing.assert_array_equal(np.load(outputs["v.npy"]), want)
    back = read_frames(outputs[f"p{written}"], size=None, fit="resize", channels=1)
    assert back.shape == (4, 1, 32, 32)
    assert np.abs(back.astype(float) - want).mean() < 8  # lossy codecs


def test_uint8_for_a_run_in_other_units_is_refused(nc_run, tmp_path, capsys) -> None:
    run, _, ds = nc_run
    np.save(tmp_path / "u8.npy", np.zeros((3, 1, 12, 12), np.uint8) + 7)
    code, _, err = mimcast(capsys, "predict", "--run-dir", run, "--input", tmp_path / "u8.npy",
                           "--horizon", 2, "--output", tmp_path / "p.npy")  # fmt: skip
    assert_one_line_error(code, err, "uint8 pixels, but the model's data is mm/h")
    assert not (tmp_path / "p.npy").exists()


def test_evaluate_on_a_file_in_other_units_is_refused(nc_run, tmp_path, capsys) -> None:
    run, _, ds = nc_run
    (ds / 40.0).to_netcdf(tmp_path / "fraction.nc", engine="h5netcdf")  # [0, 1], not mm/h
    before = listing(run)
    code, _, err = mimcast(capsys, "evaluate", "--run-dir", run, "--data-root",
                           tmp_path / "fraction.nc")  # fmt: skip
    assert_one_line_error(code, err, "other units? convert the file first")
    assert listing(run) == before


def test_data_root_folder_holding_mnist_test_seq_evaluates(mnist_run, tmp_path, capsys) -> None:
    seq = np.random.default_rng(0).integers(0, 256, (20, 4, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", seq)  # 32x32 frames, like the tiny run's
    code, out, err = mimcast(capsys, "evaluate", "--run-dir", mnist_run, "--data",
                             "mmnist-file", "--data-root", tmp_path)  # fmt: skip
    assert code == 0 and "mmnist-file/test: 4 sequences" in out, err


# ---------------- bad input at the new entry points
def test_bad_inputs_get_one_line_and_nothing_is_written(nc_run, mnist_run, tmp_path, capsys):
    run, source, ds = nc_run
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "junk.avi").write_bytes(b"RIFF not really" * 40)
    (bad / "noframes").mkdir()
    (bad / "noframes" / "notes.txt").write_text("nothing to see")
    (bad / "mixed").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(bad / "mixed" / "0.png")
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(bad / "mixed" / "1.png")
    ds.rename({"rain": "snow"}).to_netcdf(bad / "snow.nc", engine="h5netcdf")
    out = tmp_path / "out"
    out.mkdir()
    before = listing(tmp_path)
    cases = [
        (mnist_run, bad / "empty.mp4", [], "cannot decode the video"),
        (mnist_run, bad / "junk.avi", [], "cannot decode the video"),
        (mnist_run, bad / "noframes", [], "no image frames"),
        (mnist_run, bad / "mixed", [], "frames of different sizes"),
        (run, bad / "snow.nc", ["--variable", "rain"], "no variable 'rain'; it has snow"),
        (run, source, ["--input-units", "pixels"], "invalid choice"),
    ]
    for run_dir, given, extra, message in cases:
        code, _, err = mimcast(capsys, "predict", "--run-dir", run_dir, "--input", given,
                               "--horizon", 2, "--output", out / "p.mp4", *extra)  # fmt: skip
        if message == "invalid choice":  # argparse's own line
            assert code == 2 and message in err
            continue
        assert_one_line_error(code, err, message)
    for given, message in [(bad / "empty.mp4", "cannot decode"), (bad / "mixed", "sizes")]:
        code, _, err = mimcast(capsys, "train", "--run-dir", out / "r", "--data", "video",
                               "--data-root", given, "--steps", 1)  # fmt: skip
        assert_one_line_error(code, err, message)
    assert listing(tmp_path) == before


def test_data_info_tells_what_a_data_set_resolves_to(tmp_path, capsys) -> None:
    np.save(tmp_path / "series.npy", np.random.default_rng(0).random((80, 2, 8, 8)) * 30)
    code, out, err = mimcast(capsys, "data", "info", "--data", "custom", "--data-root",
                             tmp_path / "series.npy", "--set", "data.options.seq_len=6",
                             "data.options.context_len=2")  # fmt: skip
    assert code == 0, err
    assert "frames: 2 x 8 x 8 (C, H, W)" in out and "context 2 -> 4 predicted" in out
    assert "train: 59 windows of 6 frames" in out  # steps 0-63, windows of 6 every 1
    assert "chronological, 0.8/0.1/0.1" in out and "(T, C, H, W)" in out
    before = listing(tmp_path)
    code, _, err = mimcast(capsys, "data", "info", "--data", "video", "--data-root",
                           tmp_path / "nothing.mp4")  # fmt: skip
    assert_one_line_error(code, err, "does not exist")
    assert listing(tmp_path) == before
