"""A tiny run trained, evaluated and used for a prediction on the test device (--device)."""

from __future__ import annotations

import numpy as np

from tests.helpers import run_cli
from tests.tiny import tiny_sets


def test_train_evaluate_predict_on_the_device(device, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    for precision in ("32", "bf16-mixed"):
        code, out, err = run_cli(
            capsys, "train", "--run-dir", run, "--steps", 2, "--device", device.type,
            "--precision", precision, "--overwrite", "--set", *tiny_sets(),
        )  # fmt: skip
        assert code == 0, err
        assert f"device {device.type}" in out
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    code, _, err = run_cli(
        capsys, "predict", "--run-dir", run, "--input", ctx, "--horizon", 3, "--output",
        tmp_path / "p.npy", "--device", device.type,
    )  # fmt: skip
    assert code == 0, err
    assert np.load(tmp_path / "p.npy").shape == (3, 1, 32, 32)
