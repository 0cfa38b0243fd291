"""TrajGRU against Hzzone/Precipitation-Nowcasting's PyTorch TrajGRU (its Encoder, float64):
the port's parameters, frames and per-step encoder outputs, made by scripts/trajgru_fixture.py.

What is compared: the encoder's two levels at every step (the frame convolution, the flow
network, the L warps, the gates, the stride-2 convolution between the levels), with
model.trajgru_grid="torch_port" (the port's sampling grid). The forecaster is not: the port's
reads no input at its top level and starts from the encoder's last states (trajgru.py).
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch

import mimcast
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "trajgru_parity.npz"
ENCODER_PREFIXES = ("stack.frame_conv.", "stack.down.", "stack.layers.0.", "stack.layers.1.")


def fixture() -> tuple[dict, dict[str, torch.Tensor], torch.Tensor, list[torch.Tensor]]:
    data = np.load(FIXTURE)
    cfg = ast.literal_eval(str(data["meta/config"]))
    params = {k[len("param/") :]: torch.from_numpy(data[k]) for k in data.files
              if k.startswith("param/")}  # fmt: skip
    levels = [torch.from_numpy(data[f"encoder/{i}"]) for i in range(len(cfg["hidden"]))]
    return cfg, params, torch.from_numpy(data["frames"]), levels


def model(cfg: dict, params: dict[str, torch.Tensor], grid: str) -> mimcast.Forecaster:
    size = {k: cfg[k] for k in ("in_channels", "height", "width", "hidden", "filter_size",
                                "trajgru_links")}  # fmt: skip
    net = mimcast.create_model("trajgru", trajgru_grid=grid, **size).double()
    missing, unexpected = net.load_state_dict(params, strict=False)
    assert unexpected == []
    assert not [k for k in missing if k.startswith(ENCODER_PREFIXES)]  # the encoder: all loaded
    return net


def encoder_outputs(net: mimcast.Forecaster, frames: torch.Tensor) -> list[torch.Tensor]:
    """Each encoder level's state after every step, (B, T, C, h, w)."""
    state, levels = None, [[] for _ in net.config.hidden]
    with torch.no_grad():
        for t in range(frames.shape[1]):
            _, state = net.stack(frames[:, t], state)
            for steps, h in zip(levels, state.encoder):
                steps.append(h)
    return [torch.stack(steps, dim=1) for steps in levels]


def test_encoder_matches_the_pytorch_port() -> None:
    cfg, params, frames, expected = fixture()
    got = encoder_outputs(model(cfg, params, "torch_port"), frames)
    for ours, theirs in zip(got, expected):
        assert ours.shape == theirs.shape and ours.dtype == torch.float64
        assert (ours - theirs).abs().max().item() < 1e-9
        assert theirs.abs().mean() > 0.02  # the states are not all near zero


@pytest.mark.parametrize("change", ["pixel centres", "flow sign"])
def test_the_grid_and_the_flow_sign_matter(change: str) -> None:
    """mimcast's default grid (pixel centres, MXNet's) and the flow's sign are both seen by the
    fixture: with either changed the encoder is no longer the port's."""
    cfg, params, frames, expected = fixture()
    grid = "centres" if change == "pixel centres" else "torch_port"
    if change == "flow sign":
        params = {k: -v if ".flow_out." in k else v for k, v in params.items()}
    got = encoder_outputs(model(cfg, params, grid), frames)
    assert (got[0] - expected[0]).abs().max() > 1e-3


def test_the_grid_setting_is_checked() -> None:
    with pytest.raises(mimcast.ConfigError, match="trajgru_grid"):
        mimcast.create_model("trajgru", in_channels=1, height=8, width=8, trajgru_grid="mxnet")
    with pytest.raises(mimcast.ConfigError, match="applies to the 'trajgru' model only"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, trajgru_grid="torch_port")
