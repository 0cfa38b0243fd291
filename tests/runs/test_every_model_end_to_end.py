"""Every registered model, tiny, through the command line: train, evaluate, predict, export to
the Hub layout, and predict again from the exported folder, which must give the same frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mimcast
from tests.helpers import run_cli
from tests.tiny import tiny_sets


@pytest.mark.parametrize("name", mimcast.list_models())
def test_train_evaluate_predict_export_reload(name: str, tmp_path, capsys) -> None:
    run, hub = tmp_path / "run", tmp_path / "hub"
    sets = tiny_sets({"model": {"name": name}, "eval": {"show": 0}})
    code, out, err = run_cli(capsys, "train", "--run-dir", run, "--steps", 2, "--set", *sets)
    assert code == 0, err
    assert f"training {name}" in out
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", run, "--checkpoint", "last")
    assert code == 0 and "mean" in out, err
    assert json.loads((run / "eval" / "test" / "metrics.json").read_text())["n_sequences"] == 4
    code, _, err = run_cli(capsys, "export", "--run-dir", run, "--format", "hub", "--output", hub)
    assert code == 0, err
    assert json.loads((hub / "config.json").read_text())["model_config"]["name"] == name

    context = tmp_path / "context.npy"
    rng = np.random.default_rng(0)
    np.save(context, rng.uniform(0, 255, (3, 1, 32, 32)).astype(np.float32))
    forecasts = []
    for source in (["--run-dir", run], ["--model", hub]):
        target = tmp_path / f"forecast{len(forecasts)}.npy"
        code, _, err = run_cli(capsys, "predict", *source, "--input", context, "--horizon", 4,
                               "--output", target)  # fmt: skip
        assert code == 0, err
        forecasts.append(np.load(target))
    assert forecasts[0].shape == (4, 1, 32, 32) and np.isfinite(forecasts[0]).all()
    np.testing.assert_array_equal(forecasts[0], forecasts[1])
    assert mimcast.from_pretrained(hub).config == mimcast.load_model(run).config
