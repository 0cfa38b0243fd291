"""End to end through the command line: train -> evaluate -> predict, artifacts and errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mimcast.evaluation import viz
from tests.helpers import run_cli
from tests.tiny import tiny_sets

TINY = tiny_sets({"train": {"precision": "bf16-mixed"}, "eval": {"num_sequences": 6, "show": 2}})


def mimcast(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mimcast", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    r = mimcast(
        "train", "--run-dir", str(run_dir), "--steps", "4", "--batch-size", "4", "--set", *TINY
    )
    assert r.returncode == 0, r.stderr
    return run_dir


def test_train_writes_every_artifact(run: Path) -> None:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["steps"] == 4 and cfg["model"]["hidden"] == [4, 4]
    assert json.loads((run / "model.json").read_text())["height"] == 32
    assert json.loads((run / "data.json").read_text())["units_scale"] == [255.0]
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss"]) > 0 for r in rows) and rows[1]["val_mse"] != ""
    for pointer in ("last", "best"):
        target = json.loads((run / "checkpoints" / f"{pointer}.json").read_text())["dir"]
        assert (run / "checkpoints" / target / "tensors.safetensors").is_file()
    out = run / "eval" / "test"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_sequences"] == 6 and metrics["n_frames"] == 3
    assert set(metrics["mean"]) >= {"mse", "mae", "ssim", "ssim_legacy", "psnr"}
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 3
    for name in ("framewise_mse.png", "framewise_ssim.png", "strip_0.png", "strip_1.png"):
        assert Image.open(out / name).size[0] > 50
    assert Image.open(out / "sequence_0.gif").n_frames == 3
    report = (run / "report.md").read_text()
    assert "| **mean** |" in report and "eval/test/strip_0.png" in report


def test_evaluate_again_with_compare(run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """A second run's curves, read from its metrics.json, are drawn beside this run's in the
    frame-wise plots that report.md shows."""
    other = tmp_path / "other-run"
    code, _, err = run_cli(capsys, "train", "--run-dir", other, "--steps", 2, "--seed", 7,
                           "--set", *TINY)  # fmt: skip
    assert code == 0, err
    drawn = {}
    plot = viz.plot_framewise

    def recording(curves, metric, path, **kwargs):
        drawn[metric] = {label: list(c[metric]) for label, c in curves.items()}
        return plot(curves, metric, path, **kwargs)

    monkeypatch.setattr(viz, "plot_framewise", recording)
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", run, "--checkpoint", "last",
                             "--compare", other)  # fmt: skip
    assert code == 0 and "mean" in out, err
    mine = json.loads((run / "eval" / "test" / "metrics.json").read_text())["per_frame"]
    theirs = json.loads((other / "eval" / "test" / "metrics.json").read_text())["per_frame"]
    runs = {k: v for k, v in drawn["mse"].items() if k not in ("persistence", "optical flow")}
    assert runs == {"run": mine["mse"], "other-run": theirs["mse"]}  # beside the baselines
    assert mine["mse"] != theirs["mse"]  # two runs, two curves
    assert "eval/test/framewise_mse.png" in (run / "report.md").read_text()


def test_predict_from_context_in_data_units(run: Path, tmp_path: Path) -> None:
    context = (np.random.default_rng(0).random((3, 1, 32, 32)) * 255).astype(np.float32)
    np.save(tmp_path / "ctx.npy", context)
    out = tmp_path / "pred.npy"
    r = mimcast(
        "predict",
        "--run-dir",
        str(run),
        "--input",
        str(tmp_path / "ctx.npy"),
        "--horizon",
        "5",
        "--output",
        str(out),
        "--gif",
        str(tmp_path / "p.gif"),
        "--png",
        str(tmp_path / "p.png"),
    )
    assert r.returncode == 0, r.stderr
    pred = np.load(out)
    assert pred.shape == (5, 1, 32, 32) and pred.dtype == np.float32
    assert pred.min() >= 0 and pred.max() <= 255
    assert Image.open(tmp_path / "p.gif").n_frames == 5
    assert f"(and {tmp_path / 'p.gif'}, {tmp_path / 'p.png'})" in r.stdout  # every file named
    np.save(tmp_path / "batch.npy", np.stack([context, context]))
    r = mimcast(
        "predict",
        "--run-dir",
        str(run),
        "--input",
        str(tmp_path / "batch.npy"),
        "--horizon",
        "2",
        "--output",
        str(tmp_path / "b.npz"),
    )
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "b.npz")["prediction"].shape == (2, 2, 1, 32, 32)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--steps", "0"], "train.steps must be >= 1"),
        (["train", "--model", "mimo"], "unknown model 'mimo'"),
        (["train", "--data", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "--set", "train.lr=fast"], "train.lr must be a number"),
        (["train", "--seed", "-1"], "train.seed must be >= 0"),
        (["train", "--lr", "inf"], "train.lr must be a finite number"),
        (["train", "--preset", "huge"], "unknown preset 'huge'"),
        (["evaluate", "--run-dir", "nowhere"], "not a mimcast run folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    r = (
        mimcast(*args, "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
        if args[0] == "train"
        else mimcast(*args, cwd=tmp_path)
    )
    assert r.returncode == 2
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_predict_refuses_bad_inputs_and_writes_nothing(run: Path, tmp_path: Path) -> None:
    cases = {
        "wrong_shape.npy": (np.zeros((3, 1, 16, 16), np.float32), "the model expects (1, 32, 32)"),
        "wrong_rank.npy": (np.zeros((32, 32), np.float32), "must be (T, C, H, W)"),
        "nan.npy": (np.full((3, 1, 32, 32), np.nan, np.float32), "NaN or inf"),
        "range.npy": (np.full((3, 1, 32, 32), 9000.0, np.float32), "wrong units"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        out = tmp_path / f"out_{name}"
        r = mimcast(
            "predict",
            "--run-dir",
            str(run),
            "--input",
            str(tmp_path / name),
            "--horizon",
            "2",
            "--output",
            str(out),
        )
        assert r.returncode == 2 and message in r.stderr, (name, r.stderr)
        assert not out.exists()
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((3, 1, 32, 32), np.float32))
    r = mimcast(
        "predict",
        "--run-dir",
        str(run),
        "--input",
        str(good),
        "--horizon",
        "2",
        "--output",
        str(good),
        "--overwrite",
    )
    assert r.returncode == 2 and "refusing to write over the input" in r.stderr
    assert np.load(good).shape == (3, 1, 32, 32)


def test_run_folder_is_never_reused_silently(run: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in run.iterdir())
    r = mimcast("train", "--run-dir", str(run), "--steps", "2", "--set", *TINY)
    assert r.returncode == 2 and "--resume" in r.stderr
    assert sorted(p.name for p in run.iterdir()) == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    r = mimcast("train", "--run-dir", str(foreign), "--overwrite", "--steps", "2", "--set", *TINY)
    assert r.returncode == 2 and "not a mimcast run" in r.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
