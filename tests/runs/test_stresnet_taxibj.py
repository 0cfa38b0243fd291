"""ST-ResNet on TaxiBJ with its period, trend and external inputs, through the command line:
it trains and evaluates (metrics on the flows alone), a model whose inputs do not match the
data's is refused, and predicting from a context alone is refused, each in one line."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np

from tests.data.writers import taxibj_dates, write_bj_externals, write_taxibj_root
from tests.helpers import listing, run_cli
from tests.tiny import tiny_sets

START = dt.date(2016, 3, 1)
INPUTS = ["data.options.period_days=1", "data.options.trend_weeks=1", "data.options.externals=true"]
MODEL = [
    "model.patch_size=1",
    "model.stresnet_period=1",
    "model.stresnet_trend=1",
    "model.stresnet_externals=28",
]


def test_stresnet_trains_and_evaluates_on_taxibj_with_its_inputs(tmp_path, capsys) -> None:
    root = write_taxibj_root(tmp_path / "bj", days=10, hw=16)
    write_bj_externals(root, taxibj_dates([START + dt.timedelta(days=k) for k in range(10)]), [])
    sets = [s for s in tiny_sets({"model": {"name": "stresnet"}}) if "data.options" not in s]
    window = ["data.options.seq_len=8", "data.options.context_len=4", "data.options.test_days=1"]
    common = ["--data", "taxibj", "--data-root", root, "--steps", 2, "--set", *sets, *window]
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--run-dir", run, *common, *INPUTS, *MODEL)
    assert code == 0, err
    assert json.loads((run / "data.json").read_text())["frame_shape"] == [34, 16, 16]
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", run, "--checkpoint", "last")
    assert code == 0, err
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert metrics["n_sequences"] == 4 and len(metrics["per_frame"]["mse"]) == 4
    assert (run / "eval" / "test" / "diff_0.png").is_file()  # the flows' maps: 2 channels
    persistence = metrics["baselines"]["persistence"]["mean"]["mse"]
    # the last context frame's flows (16 x 16 x 2 of a smooth wave): a small error per frame;
    # over the given inputs too (the weather of other slots) it would be far larger
    assert 0 < persistence < 5

    before = listing(tmp_path)
    code, out, err = run_cli(capsys, "train", "--run-dir", tmp_path / "other", *common, *INPUTS)
    assert code == 2 and "Traceback" not in err
    assert "gives the known inputs period (2 channels), trend (2 channels), externals (28 " in err
    assert "model 'stresnet' reads none" in err and len(err.strip().splitlines()) == 1
    assert listing(tmp_path) == before  # nothing written

    context = tmp_path / "context.npy"
    np.save(context, np.zeros((4, 34, 16, 16), np.float32))
    code, _, err = run_cli(capsys, "predict", "--run-dir", run, "--input", context,
                           "--horizon", 2, "--output", tmp_path / "f.npy")  # fmt: skip
    assert code == 2 and "reads 32 given channels per frame" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "f.npy").exists()
