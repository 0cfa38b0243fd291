"""The forecast as one ONNX graph: every registered model, run in onnxruntime, equals PyTorch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import mimcast
from mimcast.data import DataSpec
from mimcast.share.onnx_export import export_graph
from tests.helpers import assert_one_line_error, listing, run_cli

TOL = 255 * 1e-4  # float32 through an unrolled free-running loop: 1e-4 of the 0-255 range
# a scale and an offset of each channel's own, so that a graph dropping either is caught
SCALE, OFFSET = np.array([255.0, 40.0]), np.array([-20.0, 7.5])
SPEC = DataSpec(frame_shape=(2, 8, 12), value_range=(0.0, 1.0), units="mixed",
                scale=tuple(SCALE), offset=tuple(OFFSET), context_len=3)  # fmt: skip


@pytest.mark.parametrize("name", mimcast.list_models())
def test_every_model_exports_and_matches_pytorch(name, tmp_path) -> None:
    model = mimcast.create_model(name, in_channels=2, height=8, width=12, patch_size=2,
                                 hidden=(4, 4), filter_size=3, layer_norm=True).eval()  # fmt: skip
    path = export_graph(model, SPEC, tmp_path / "m.onnx", context=3, horizon=4, units="data")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["context"]
    for batch in (1, 3):  # the batch size stays dynamic
        unit = np.random.default_rng(batch).uniform(0, 1, (batch, 3, 2, 8, 12))
        context = unit * SCALE[:, None, None] + OFFSET[:, None, None]  # in data units
        got = session.run(None, {"context": context.astype(np.float32)})[0]
        with torch.no_grad():
            y = model.predict(torch.from_numpy(unit).float(), 4).clamp(0, 1).double().numpy()
        assert got.shape == (batch, 4, 2, 8, 12)
        np.testing.assert_allclose(got, y * SCALE[:, None, None] + OFFSET[:, None, None], rtol=0,
                                   atol=TOL)  # fmt: skip


def test_export_from_a_run_in_model_units_and_bad_requests(run, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    args = ["export", "--run-dir", run, "--format", "onnx", "--output", out, "--context", 3,
            "--horizon", 5, "--units", "model"]  # fmt: skip
    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "3 context frames -> 5 predicted frames, model units, any batch size" in stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    context = np.random.default_rng(0).random((2, 3, 1, 32, 32)).astype(np.float32)
    got = session.run(None, {"context": context})[0]
    want = mimcast.load_model(run).predict(torch.from_numpy(context), 5).clamp(0, 1).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    default = tmp_path / "data.onnx"  # without --units: the data's units map inside the graph
    code, stdout, err = run_cli(capsys, *args[:-2], "--output", default)
    assert code == 0 and "5 predicted frames, data units" in stdout, err
    session = ort.InferenceSession(str(default), providers=["CPUExecutionProvider"])
    got = session.run(None, {"context": context * 255})[0]  # Moving MNIST: pixels 0-255
    np.testing.assert_allclose(got, want * 255, rtol=0, atol=255 * 1e-5)
    new = tmp_path / "new.onnx"  # a free name: only the request itself is refused
    before = listing(tmp_path)
    for output, extra, message in (
        (new, ["--context", 3], "needs --context N and --horizon K"),
        (new, ["--context", 0, "--horizon", 2], "--context must be in [1, 1000] frames, got 0"),
        (new, ["--context", 100000, "--horizon", 2], "--context must be in [1, 1000] frames"),
        (new, ["--context", 3, "--horizon", 1001], "--horizon must be in [1, 1000], got 1001"),
        (tmp_path / "m.txt", ["--context", 3, "--horizon", 2], "must end in .onnx"),
        (out, ["--context", 3, "--horizon", 2], "exists: pass --overwrite"),
    ):
        args = ["export", "--run-dir", run, "--format", "onnx", "--output", output, *extra]
        code, _, err = run_cli(capsys, *args)
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before, extra


def test_a_missing_exporter_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name)
    )
    out = tmp_path / "m.onnx"
    args = ["export", "--run-dir", tmp_path / "no-run", "--format", "onnx", "--output", out,
            "--context", 3, "--horizon", 2]  # fmt: skip
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, "ONNX export needs onnxscript: pip install 'mimcast[onnx]'")
    assert not out.exists()
