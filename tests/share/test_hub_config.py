"""Hub folders whose values are wrong but well typed, and configs edited to huge models: each
refused at load with one line, exit 2, nothing written, before any model is built."""

from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import mimcast
from mimcast.errors import CheckpointError, MimcastError
from mimcast.models import weights
from tests.helpers import assert_one_line_error, listing, run_cli


def edit_config(d: Path, change: Callable[[dict], None]) -> None:
    cfg = json.loads((d / "config.json").read_text())
    change(cfg)
    (d / "config.json").write_text(json.dumps(cfg))  # NaN as JSON's NaN, as Python writes it


def edit_weights(d: Path, change: Callable[[dict], None]) -> None:
    state = load_file(d / "model.safetensors")
    change(state)
    save_file(state, d / "model.safetensors")


def first_weight(state: dict) -> str:
    return sorted(state)[0]


def set_data(key: str, value) -> Callable[[dict], None]:
    return lambda cfg: cfg["data"].__setitem__(key, value)


def nan_weight(state: dict) -> None:
    state[first_weight(state)].view(-1)[0] = math.nan


def inf_weight(state: dict) -> None:
    state[first_weight(state)].view(-1)[-1] = -math.inf


def int_weight(state: dict) -> None:
    key = first_weight(state)
    state[key] = state[key].to(torch.int64)


def no_height(cfg: dict) -> None:
    cfg["model_config"]["height"] = None


CONFIG_CASES = {
    "nan-value-range": (set_data("value_range", [math.nan, 1.0]), "value_range [nan, 1.0] is not"),
    "reversed-value-range": (
        set_data("value_range", [1.0, 0.0]),
        "value_range [1.0, 0.0] is not two finite values, low < high",
    ),  # fmt: skip
    "context-len-0": (set_data("context_len", 0), "(data) is damaged: context_len 0 is below 1"),
    "context-len-negative": (set_data("context_len", -3), "context_len -3 is below 1"),
    "unknown-data-key": (set_data("surprise", 1), "unknown key(s) under data: surprise"),
    "frame-shape-contradicts": (
        set_data("frame_shape", [1, 16, 16]),
        "data.frame_shape [1, 16, 16] contradicts the model's frames [1, 32, 32]",
    ),  # fmt: skip
    "fractional-frame-shape": (
        set_data("frame_shape", [1.7, 32, 32]),
        "data.frame_shape = [1.7, 32, 32] is not a valid",
    ),  # fmt: skip
    "units-as-number": (set_data("units", 5), "data.units = 5 is not a valid value"),
    "three-scales": (
        set_data("units_scale", [1.0, 2.0, 3.0]),
        "units_scale and units_offset need one value, or one per channel (1), not 3 and 1",
    ),  # fmt: skip
    "unknown-fit": (set_data("video_fit", "stretch"), "video_fit must be resize or crop"),
    "data-not-an-object": (lambda cfg: cfg.__setitem__("data", [1]), "data must be a JSON object"),
    "no-frames": (no_height, "model_config has no in_channels, height and width"),
}
WEIGHT_CASES = {
    "nan-weight": (nan_weight, "holds NaN or inf values"),
    "inf-weight": (inf_weight, "holds NaN or inf values"),
    "int-weight": (int_weight, "is I64, not floats"),
}


def bad_folders(exported: Path, root: Path) -> dict[str, tuple[Path, str]]:
    cases = {}
    for name, (change, message) in CONFIG_CASES.items():
        d = Path(shutil.copytree(exported, root / name))
        edit_config(d, change)
        cases[name] = (d, message)
    for name, (change, message) in WEIGHT_CASES.items():
        d = Path(shutil.copytree(exported, root / name))
        edit_weights(d, change)
        cases[name] = (d, message)
    return cases


def test_wrong_values_are_refused_at_load_with_one_line(exported, tmp_path, capsys) -> None:
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    cases = bad_folders(exported, tmp_path / "bad")
    before = listing(tmp_path)
    for name, (folder, message) in cases.items():
        code, _, err = run_cli(capsys, "predict", "--model", folder, "--input", ctx, "--horizon",
                               2, "--output", tmp_path / "out.npy")  # fmt: skip
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before, name
        with pytest.raises(MimcastError, match=re.escape(message)):
            mimcast.from_pretrained(folder)  # the same check in the Python API


# A process that loads a Hub folder under a 3 GB address-space limit (torch and mimcast take
# about 0.6 GB): building a model of billions of parameters would fail with MemoryError.
LIMITED_LOAD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mimcast.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("hidden", "filter_size"), [([1024, 1024], 9), ([2048, 2048], 15)])
def test_a_config_edited_to_a_huge_model_is_refused_before_building(
    exported, tmp_path, hidden, filter_size
) -> None:
    d = Path(shutil.copytree(exported, tmp_path / "huge"))
    edit_config(d, lambda cfg: cfg["model_config"].update(hidden=hidden, filter_size=filter_size))
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    before = listing(tmp_path)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED_LOAD, "predict", "--model", str(d), "--input", str(ctx),
         "--horizon", "2", "--output", str(tmp_path / "out.npy")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(mimcast.__file__).parents[1]), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    expects = f"the model expects (16, {hidden[-1]}, 1, 1)"  # the head: hidden -> 16 channels
    assert_one_line_error(proc.returncode, proc.stderr, expects)
    assert time.monotonic() - start < 60  # about 3 s on a busy 2-core machine: no build
    assert listing(tmp_path) == before


def test_the_hubs_own_loading_path_checks_the_header_first(exported, tmp_path) -> None:
    d = Path(shutil.copytree(exported, tmp_path / "huge"))
    edit_config(d, lambda cfg: cfg["model_config"].update(hidden=[2048, 2048], filter_size=15))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="the model expects"):
        mimcast.Forecaster.from_pretrained(d)  # huggingface_hub's ModelHubMixin path
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 500  # 151 GB if the model were built


def test_a_header_claiming_the_shapes_of_a_huge_model_is_refused(exported, tmp_path) -> None:
    """A hostile file: config and header agree on a huge model, the data is the tiny one's."""
    d = Path(shutil.copytree(exported, tmp_path / "forged"))
    raw = (d / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    key = next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 4)
    header[key]["shape"] = [4096, 4096, 9, 9]
    text = json.dumps(header).encode()
    (d / "model.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    with pytest.raises(CheckpointError, match="cannot read .*invalid shape, data type, or offset"):
        mimcast.from_pretrained(d)


def test_a_model_beyond_the_parameter_cap_is_refused(exported, monkeypatch) -> None:
    n = sum(p.numel() for p in mimcast.from_pretrained(exported).parameters())
    monkeypatch.setattr(weights, "MAX_PARAMETERS", n - 1)
    with pytest.raises(
        CheckpointError, match=re.escape(f"a model of {n:.3g} parameters, more than")
    ):
        mimcast.from_pretrained(exported)
    monkeypatch.setattr(weights, "MAX_PARAMETERS", n)
    mimcast.from_pretrained(exported)  # at the cap: loads
