"""CDNA against Xiaohui9607/physical_interaction_video_prediction_pytorch (a PyTorch port of
the official code), float64: the port's parameters under mimcast's names, the frames, and the
port's per-step quantities, made by scripts/cdna_fixture.py.

What is compared, at every step: the seven ConvLSTMs' states (h, c) (the frame convolution,
the stride-2 and transposed convolutions between the levels, the skips, the layer norms), the
bottleneck the kernels are made from, and the K normalised kernels applied to the frame. Not
compared: the last convolution and the masks (the port's run at full resolution after a
transposed convolution, mimcast's on the folded grid) and the composite (the port's adds an
image generated from scratch): see cdna.py and the script's docstring.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch

import mimcast
from mimcast.models.cdna import normalised_kernels, transformed_frames
from mimcast.models.layers import folded_frame
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "cdna_parity.npz"
NOT_IN_THE_PORT = {"stack.enc6.0.weight", "stack.enc6.0.bias", "stack.enc6.2.weight",
                   "stack.enc6.2.bias", "head.masks.weight", "head.masks.bias"}  # fmt: skip


def fixture() -> tuple[dict, dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    data = np.load(FIXTURE)
    cfg = ast.literal_eval(str(data["meta/config"]))
    tensors = {k: torch.from_numpy(data[k]) for k in data.files if k != "meta/config"}
    params = {k[len("param/") :]: v for k, v in tensors.items() if k.startswith("param/")}
    port = {k[len("port/") :]: v for k, v in tensors.items() if k.startswith("port/")}
    return cfg, params, tensors["frames"], port


def model(cfg: dict, params: dict[str, torch.Tensor]) -> mimcast.Forecaster:
    size = {k: cfg[k] for k in ("in_channels", "height", "width", "patch_size", "hidden",
                                "filter_size", "layer_norm", "cdna_kernels")}  # fmt: skip
    net = mimcast.create_model("cdna", **size).double()
    missing, unexpected = net.load_state_dict(params, strict=False)
    assert unexpected == [] and set(missing) == NOT_IN_THE_PORT
    return net


def run(net: mimcast.Forecaster, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per step (the port's T - 1): every ConvLSTM's (h, c), the bottleneck, the K transformed
    frames (B, T - 1, K, C, H, W)."""
    seen: dict[str, list[torch.Tensor]] = {}
    state, p, k = None, net.config.patch_size, net.config.cdna_kernels
    with torch.no_grad():
        for t in range(frames.shape[1] - 1):
            features, state = net.stack(folded_frame(frames[:, t], p), state)
            raw = net.head.kernels(features.bottleneck.flatten(1))
            kernels = normalised_kernels(raw.reshape(raw.shape[0], k, 5, 5))
            values = {"bottleneck": features.bottleneck,
                      "transformed": transformed_frames(frames[:, t], kernels)}  # fmt: skip
            for l, st in enumerate(state):
                values |= {f"state/{l}/h": st.h, f"state/{l}/c": st.c}
            for key, value in values.items():
                seen.setdefault(key, []).append(value)
    return {key: torch.stack(v, dim=1) for key, v in seen.items()}


def test_stack_and_kernels_match_the_pytorch_port() -> None:
    cfg, params, frames, expected = fixture()
    got = run(model(cfg, params), frames)
    assert set(got) == set(expected) and len(expected) == 2 * 7 + 2
    for key, theirs in expected.items():
        assert got[key].shape == theirs.shape and got[key].dtype == torch.float64, key
        assert (got[key] - theirs).abs().max().item() < 1e-9, key
        assert theirs.abs().mean() > 0.03, key  # nothing compared is all near zero


@pytest.mark.parametrize("change", ["forget bias", "gate order", "first convolution"])
def test_the_mapping_is_seen(change: str) -> None:
    """The fixture sees the port's forget bias (+1 in f's bias), its gate order and the
    stride-2 convolution's taps: each changed, the states are no longer the port's."""
    cfg, params, frames, expected = fixture()
    params = dict(params)
    if change == "forget bias":
        bias = params["stack.layers.0.conv_x.conv.bias"].clone()
        bias.view(4, -1)[1] -= 1.0
        params["stack.layers.0.conv_x.conv.bias"] = bias
    elif change == "gate order":
        key = "stack.layers.0.conv_x.conv.weight"
        i, f, g, o = params[key].chunk(4)
        params[key] = torch.cat([i, g, f, o])
    else:
        params["stack.enc0.0.weight"] = params["stack.enc0.0.weight"].roll(1, dims=-1)
    got = run(model(cfg, params), frames)
    assert (got["state/0/h"] - expected["state/0/h"]).abs().max() > 1e-3
