"""The baselines in evaluations (metrics.json, table, report, --baselines) and as files
(`mimcast predict --method persistence|flow`, every output format predict writes)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
from PIL import Image

from mimcast.data.video import read_frames, write_video
from mimcast.evaluation.metrics import FrameMetrics
from mimcast.runs.datasets import build_splits
from mimcast.runs.rundir import RunDir

from ..evaluation.test_baselines import translated
from ..helpers import assert_one_line_error, listing
from ..helpers import run_cli as mimcast
from ..tiny import tiny_sets


def train(capsys, run_dir: Path, *args) -> None:
    code, _, err = mimcast(capsys, "train", "--run-dir", run_dir, "--steps", 2, *args,
                           "--set", *tiny_sets())  # fmt: skip
    assert code == 0, err


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny run, trained and evaluated with the default baselines (all)."""
    from mimcast.cli import main

    run_dir = tmp_path_factory.mktemp("baselines") / "run"
    assert main(["train", "--run-dir", str(run_dir), "--steps", "2", "--set", *tiny_sets()]) == 0
    return run_dir


def persistence_mse(run_dir: Path) -> list[float]:
    """Persistence's MSE per lead time on the run's test sequences, computed here."""
    cfg = RunDir(run_dir).read_config()
    ds = build_splits(cfg, ("test",))["test"]
    x = torch.stack([ds[i] for i in range(cfg.eval.num_sequences)])
    c = ds.context_len
    m = FrameMetrics(n_frames=x.shape[1] - c)
    m.update(x[:, c - 1 : c].expand(-1, x.shape[1] - c, -1, -1, -1), x[:, c:])
    return m.compute()["per_frame"]["mse"]


def test_evaluation_gives_each_baseline_beside_the_model(run: Path) -> None:
    out = run / "eval" / "test"
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["baselines"]) == ["persistence", "flow"]
    model_mse = metrics["per_frame"]["mse"]
    for b in metrics["baselines"].values():
        assert b["n_sequences"] == metrics["n_sequences"] == 4  # the same sequences
        assert set(b["per_frame"]) == set(metrics["per_frame"])  # the same metrics
        want = [1 - m / x for m, x in zip(model_mse, b["per_frame"]["mse"], strict=True)]
        assert b["skill"] == pytest.approx(want) and len(b["skill"]) == metrics["n_frames"]
    p = metrics["baselines"]["persistence"]
    assert p["per_frame"]["mse"] == pytest.approx(persistence_mse(run))
    assert metrics["verdict"].startswith("the model ") and "persistence" in metrics["verdict"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[0]["skill_flow"]) == pytest.approx(metrics["baselines"]["flow"]["skill"][0])
    assert metrics["verdict"] in (out / "table.txt").read_text()
    report = (run / "report.md").read_text()
    assert (
        "## Against the trivial forecasts" in report and "eval/test/framewise_skill.png" in report
    )
    assert metrics["verdict"][1:] in report  # capitalised there
    assert Image.open(out / "framewise_skill.png").size[0] > 50


def test_baselines_flag_of_evaluate_chooses(run: Path, tmp_path, capsys) -> None:
    code, stdout, err = mimcast(capsys, "evaluate", "--run-dir", run, "--baselines", "persistence")
    assert code == 0, err
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert list(metrics["baselines"]) == ["persistence"] and metrics["verdict"] in stdout
    code, stdout, err = mimcast(capsys, "evaluate", "--run-dir", run, "--baselines", "none")
    assert code == 0, err
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert "baselines" not in metrics and "verdict" not in metrics
    assert not (run / "eval" / "test" / "framewise_skill.png").exists()
    assert "against the trivial forecasts" not in stdout


def test_baselines_of_train_are_a_setting(tmp_path, capsys) -> None:
    train(capsys, tmp_path / "run", "--baselines", "flow")
    assert (
        yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["eval"]["baselines"]
        == "flow"
    )
    metrics = json.loads((tmp_path / "run" / "eval" / "test" / "metrics.json").read_text())
    assert list(metrics["baselines"]) == ["flow"]


def test_bad_baselines_are_one_line_and_change_nothing(run: Path, tmp_path, capsys) -> None:
    before = listing(run)
    code, _, err = mimcast(capsys, "evaluate", "--run-dir", run, "--baselines", "lk")
    assert_one_line_error(code, err, "--baselines must be one of none, persistence, flow, all")
    assert listing(run) == before
    code, _, err = mimcast(capsys, "train", "--run-dir", tmp_path / "new", "--baselines", "lk")
    assert_one_line_error(code, err, "eval.baselines must be one of none, persistence, flow")
    assert not (tmp_path / "new").exists()


def test_flow_without_opencv_is_refused_before_any_work(run, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "cv2" else real(n))
    before = listing(run)
    code, _, err = mimcast(capsys, "evaluate", "--run-dir", run, "--baselines", "flow")
    assert_one_line_error(code, err, "--baselines flow: OpenCV is not installed")
    assert listing(run) == before
    code, _, err = mimcast(capsys, "train", "--run-dir", tmp_path / "new", "--baselines", "flow")
    assert_one_line_error(code, err, "eval.baselines flow: OpenCV is not installed")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- predict --method


def predict(capsys, method: str, source: Path, output: Path, *more) -> tuple[int, str, str]:
    return mimcast(capsys, "predict", "--method", method, "--input", source, "--horizon", 4,
                   "--output", output, *more)  # fmt: skip


@pytest.fixture
def moving(tmp_path) -> tuple[Path, np.ndarray]:
    """context.npy: 6 frames (T, 1, H, W) of a texture moving 2 px right per frame, in
    units of 0-50; and the 4 frames that follow."""
    x = translated(2, 0, frames=10).numpy()[0] * 50
    np.save(tmp_path / "context.npy", x[:6])
    return tmp_path / "context.npy", x[6:]


def test_persistence_as_a_file_is_the_last_frame(moving, tmp_path, capsys) -> None:
    source, _ = moving
    code, stdout, err = predict(capsys, "persistence", source, tmp_path / "p.npy")
    assert code == 0 and "(4, 1, 48, 48)" in stdout, err
    last = np.load(source)[-1].astype(np.float32)
    assert np.array_equal(np.load(tmp_path / "p.npy"), np.stack([last] * 4))


def test_flow_as_a_file_follows_the_motion(moving, tmp_path, capsys) -> None:
    source, future = moving
    assert predict(capsys, "flow", source, tmp_path / "f.npy")[0] == 0
    flow = np.load(tmp_path / "f.npy")
    last = np.load(source)[-1]
    assert flow.shape == future.shape and flow.min() >= 0 and flow.max() <= 50
    assert ((flow - future) ** 2).mean() < 0.1 * ((last - future) ** 2).mean()


@pytest.mark.parametrize("method", ["persistence", "flow"])
def test_method_writes_every_format_predict_writes(method, moving, tmp_path, capsys) -> None:
    source, _ = moving
    for ext in (".npy", ".npz", ".nc", ".zarr", ".h5", ".mp4", ".avi", ".gif"):
        target = tmp_path / f"out{ext}"
        code, _, err = predict(capsys, method, source, target)
        assert code == 0 and target.exists(), (ext, err)
    want = np.load(tmp_path / "out.npy")
    assert np.array_equal(np.load(tmp_path / "out.npz")["prediction"], want)
    with xr.open_dataset(tmp_path / "out.nc") as ds:
        np.testing.assert_array_equal(ds["prediction"].values, want)
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "out.zarr")["prediction"].values, want)
    with h5py.File(tmp_path / "out.h5") as f:
        np.testing.assert_array_equal(f["prediction"][()], want)
    video = read_frames(tmp_path / "out.mp4", size=None, fit="resize", channels=1)
    assert video.shape == (4, 1, 48, 48)  # the context's range spans black to white
    code, _, err = predict(capsys, method, source, tmp_path / "again.npy", "--gif",
                           tmp_path / "g.gif", "--png", tmp_path / "s.png")  # fmt: skip
    assert code == 0, err
    with Image.open(tmp_path / "g.gif") as gif:  # Pillow keeps repeated frames as one
        assert gif.size == (96, 96) and gif.n_frames == (4 if method == "flow" else 1)
    assert Image.open(tmp_path / "s.png").size[0] > 48


def test_method_on_a_video_keeps_its_size(tmp_path, capsys) -> None:
    frames = (translated(1, 0, frames=12).numpy()[0, :, :, :, :40] * 255).astype(np.uint8)
    write_video(tmp_path / "clip.mp4", frames, fps=8)  # gray, 48 high and 40 wide
    code, stdout, err = predict(capsys, "flow", tmp_path / "clip.mp4", tmp_path / "f.mp4")
    assert code == 0 and "(4, 1, 48, 40)" in stdout, err
    assert read_frames(tmp_path / "f.mp4", size=None, fit="resize", channels=1).shape[2:] == (
        48, 40,
    )  # fmt: skip


def test_method_on_netcdf_continues_its_time(tmp_path, capsys) -> None:
    t = pd.date_range("2026-06-01", periods=8, freq="h")
    values = translated(1, 1, frames=8).numpy()[0, :, 0].astype(np.float32) * 30
    da = xr.DataArray(values, dims=("time", "y", "x"), coords={"time": t}, name="rain",
                      attrs={"units": "mm/h"})  # fmt: skip
    da.to_dataset().to_netcdf(tmp_path / "rain.nc", engine="h5netcdf")
    code, _, err = predict(capsys, "flow", tmp_path / "rain.nc", tmp_path / "f.nc")
    assert code == 0, err
    with xr.open_dataset(tmp_path / "f.nc") as out:
        assert out["rain"].shape == (4, 48, 48) and out["rain"].attrs["units"] == "mm/h"
        assert out.time.values[0] == t[-1].to_datetime64() + np.timedelta64(1, "h")


def test_bad_method_inputs_are_one_line_and_write_nothing(moving, tmp_path, capsys) -> None:
    source, _ = moving
    np.save(tmp_path / "one.npy", np.load(source)[:1])
    before = listing(tmp_path)
    code, _, err = predict(capsys, "lk", source, tmp_path / "p.npy")
    assert_one_line_error(code, err, "--method must be one of persistence, flow, got 'lk'")
    code, _, err = predict(capsys, "flow", tmp_path / "one.npy", tmp_path / "p.npy")
    assert_one_line_error(code, err, "the context has 1 frame(s), this method needs 2")
    code, _, err = predict(capsys, "flow", tmp_path / "missing.npy", tmp_path / "p.npy")
    assert_one_line_error(code, err, "input file not found")
    code, _, err = predict(capsys, "flow", source, tmp_path / "p.txt")
    assert_one_line_error(code, err, "--output must end in")
    code, _, err = predict(capsys, "persistence", source, tmp_path / "p.npy", "--run-dir", "x")
    assert_one_line_error(code, err, "not allowed with argument")
    assert listing(tmp_path) == before
