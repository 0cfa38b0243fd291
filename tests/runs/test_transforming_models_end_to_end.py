"""The models whose heads transform the frame they read (DFN, CDNA), through the command
line: train, evaluate, predict, export to the Hub layout, and predict again from the export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mimcast
from tests.helpers import assert_one_line_error, listing, run_cli
from tests.tiny import tiny_sets

# tiny sizes; CDNA with 4 layers so that its encoder-decoder goes down one level and back
HIDDEN = {"dfn": [4, 4], "cdna": [4, 4, 4, 4]}


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_train_evaluate_predict_export_reload(name: str, tmp_path, capsys) -> None:
    run, hub = tmp_path / "run", tmp_path / "hub"
    sets = tiny_sets({"model": {"hidden": HIDDEN[name]}})
    code, out, err = run_cli(capsys, "train", "--model", name, "--run-dir", run, "--steps", 2,
                             "--set", *sets)  # fmt: skip
    assert code == 0, err
    assert f"training {name}" in out
    assert json.loads((run / "model.json").read_text())["name"] == name
    assert (run / "eval" / "test" / "metrics.json").is_file()

    code, out, err = run_cli(capsys, "evaluate", "--run-dir", run, "--checkpoint", "last")
    assert code == 0, err
    assert "mean" in out

    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.random.default_rng(0).uniform(0, 255, (3, 1, 32, 32)).astype(np.float32))
    code, _, err = run_cli(capsys, "export", "--run-dir", run, "--format", "hub", "--output", hub)
    assert code == 0, err
    outs = []
    for source in (["--run-dir", run], ["--model", hub]):
        path = tmp_path / f"forecast{len(outs)}.npy"
        code, _, err = run_cli(capsys, "predict", *source, "--input", ctx, "--horizon", 4,
                               "--output", path)  # fmt: skip
        assert code == 0, err
        outs.append(np.load(path))
    assert outs[0].shape == (4, 1, 32, 32)
    np.testing.assert_array_equal(outs[0], outs[1])

    reloaded = mimcast.from_pretrained(hub)
    assert reloaded.config == mimcast.load_model(run).config and reloaded.config.name == name
    context = torch.rand(2, 3, 1, 32, 32)
    assert torch.equal(reloaded.predict(context, 3), mimcast.load_model(run).predict(context, 3))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["model.name=cdna", "model.residual=true"], "model 'cdna' has no residual form"),
        (["model.name=dfn", "model.variant=openstl"], "model 'dfn' has no 'openstl' variant"),
        (["model.name=dfn", "model.cdna_kernels=4"], "cdna_kernels applies to the 'cdna' model"),
        (["model.name=dfn", "model.dfn_filter_size=8"], "model.dfn_filter_size must be odd"),
    ],
)
def test_settings_they_cannot_take_are_one_line(sets, message, tmp_path, capsys) -> None:
    before = listing(tmp_path)
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "run", "--steps", 1,
                           "--set", *tiny_sets(), *sets)  # fmt: skip
    assert_one_line_error(code, err, message)
    assert listing(tmp_path) == before
