"""README "Command line" promises in one tiny run: --precision 16-mixed on a CPU (bf16
autocast, no gradient scaler), eval.thresholds reaching metrics.json, evaluate --split."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from mimcast.training import trainer
from tests.helpers import run_cli
from tests.tiny import tiny_sets

TINY = tiny_sets({"eval": {"thresholds": [0.001, 0.02]}, "train": {"precision": "16-mixed"}})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list]:
    """The run, and the autocast dtype of each training step."""
    real, dtypes = trainer.autocast, []

    @contextlib.contextmanager
    def recording(device, precision):
        with real(device, precision):
            enabled = torch.is_autocast_enabled("cpu")
            dtypes.append(torch.get_autocast_dtype("cpu") if enabled else torch.float32)
            yield

    mp = pytest.MonkeyPatch()
    mp.setattr(trainer, "autocast", recording)
    run_dir = tmp_path_factory.mktemp("cl") / "run"
    try:
        from mimcast import cli

        assert cli.main(["train", "--run-dir", str(run_dir), "--steps", "2", "--set", *TINY]) == 0
    finally:
        mp.undo()
    return run_dir, dtypes


def test_16_mixed_on_a_cpu_runs_in_bf16(run) -> None:
    run_dir, dtypes = run
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["precision"] == "16-mixed"
    assert dtypes == [torch.bfloat16, torch.bfloat16]  # one per step: fp16 is for CUDA


def test_thresholds_reach_metrics_json(run) -> None:
    """CSI, POD and FAR at each threshold, per frame (null where a frame has no event): rates
    bound to one another, CSI = H/(H+M+F) = 1 / (1/POD + 1/(1-FAR) - 1)."""
    m = json.loads((run[0] / "eval" / "test" / "metrics.json").read_text())
    for t in ("0.001", "0.02"):
        csi, pod, far = (m["per_frame"][f"{k}@{t}"] for k in ("csi", "pod", "far"))
        assert len(csi) == len(pod) == len(far) == 3
        defined = [
            (c, p, f) for c, p, f in zip(csi, pod, far, strict=True) if None not in (c, p, f)
        ]
        assert defined, m["per_frame"]
        for c, p, f in defined:
            assert 0 <= c <= p <= 1 and 0 <= f < 1
            if c > 0:
                assert c == pytest.approx(1 / (1 / p + 1 / (1 - f) - 1), rel=1e-6)
        assert f"csi@{t}" in m["mean"]


@pytest.mark.parametrize("split", ["train", "val"])
def test_evaluate_another_split(run, split, capsys) -> None:
    run_dir = run[0]
    test = (run_dir / "eval" / "test" / "metrics.json").read_bytes()
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", run_dir, "--split", split)
    assert code == 0 and f"/{split}:" in out, err
    m = json.loads((run_dir / "eval" / split / "metrics.json").read_text())
    assert m["n_sequences"] == 4 and m["n_frames"] == 3
    assert m["mean"] != json.loads(test)["mean"]  # other sequences than the test split's
    assert (run_dir / "eval" / "test" / "metrics.json").read_bytes() == test  # left as it was
