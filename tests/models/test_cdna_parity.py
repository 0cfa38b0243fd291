"""CDNA against Xiaohui9607/physical_interaction_video_prediction_pytorch (a PyTorch port of
the official code), float64: the port's parameters under mimcast's names, the frames, and the
port's per-step quantities, made by scripts/cdna_fixture.py.

What is compared, at every step: the seven ConvLSTMs' states (h, c) (the frame convolution,
the stride-2 and transposed convolutions between the levels, the skips, the layer norms), the
bottleneck the kernels are made from, and the K normalised kernels applied to the frame; and
the head with model.cdna_composite="official" (kernels, masks, generated image, composite)
fed the port's own last features. Not compared: the last convolution (the port's a transposed
convolution to full resolution, mimcast's on the folded grid): see the script's docstring.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch

import mimcast
from mimcast.models.cdna import (
    CDNAFeatures,
    CompositingHead,
    normalised_kernels,
    transformed_frames,
)
from mimcast.models.config import ModelConfig
from mimcast.models.layers import folded_frame, full_frame
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "cdna_parity.npz"
NOT_IN_THE_PORT = {"stack.enc6.0.weight", "stack.enc6.0.bias", "stack.enc6.2.weight",
                   "stack.enc6.2.bias", "head.masks.weight", "head.masks.bias"}  # fmt: skip


SIZE_KEYS = ("in_channels", "height", "width", "patch_size", "hidden", "filter_size", "layer_norm",
             "cdna_kernels")  # fmt: skip


def fixture() -> tuple[dict, dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    data = np.load(FIXTURE)
    cfg = ast.literal_eval(str(data["meta/config"]))
    tensors = {k: torch.from_numpy(data[k]) for k in data.files if k != "meta/config"}
    params = {k[len("param/") :]: v for k, v in tensors.items() if k.startswith("param/")}
    params |= {k: v for k, v in tensors.items() if k.startswith("official_head/")}
    port = {k[len("port/") :]: v for k, v in tensors.items() if k.startswith("port/")}
    return cfg, params, tensors["frames"], port


def model(cfg: dict, params: dict[str, torch.Tensor]) -> mimcast.Forecaster:
    net = mimcast.create_model("cdna", **{k: cfg[k] for k in SIZE_KEYS}).double()
    model_params = {k: v for k, v in params.items() if not k.startswith("official_head/")}
    missing, unexpected = net.load_state_dict(model_params, strict=False)
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
    assert set(got) == set(expected) - {"enc6", "prediction"} and len(got) == 2 * 7 + 2
    for key, theirs in ((k, v) for k, v in expected.items() if k in got):
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


def official_head_predictions(
    cfg: dict,
    head_params: dict[str, torch.Tensor],
    frames: torch.Tensor,
    port: dict[str, torch.Tensor],
    composite: str = "official",
) -> torch.Tensor:
    """mimcast's head (model.cdna_composite) over the port's folded enc6 and bottleneck at every
    step: the next frames (B, T - 1, C, H, W)."""
    config = ModelConfig(name="cdna", cdna_composite=composite, **{k: cfg[k] for k in SIZE_KEYS})
    p, enc6 = config.patch_size, port["enc6"]
    head = CompositingHead(p * p * enc6.shape[2], port["bottleneck"][0, 0].numel(), config)
    head.double().load_state_dict(head_params)  # strict: every layer of the head
    steps = []
    with torch.no_grad():
        for t in range(enc6.shape[1]):
            features = CDNAFeatures(folded_frame(enc6[:, t], p), port["bottleneck"][:, t])
            steps.append(full_frame(head(features, folded_frame(frames[:, t], p)), p))
    return torch.stack(steps, dim=1)


def official_head(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = "official_head/"
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def test_official_composite_matches_the_pytorch_port() -> None:
    """The port's next frames: the frame, a generated image and K - 1 of its K kernels' copies
    (its last kernel's dropped), under masks through a ReLU and a softmax."""
    cfg, params, frames, port = fixture()
    got = official_head_predictions(cfg, official_head(params), frames, port)
    assert got.shape == port["prediction"].shape == frames[:, 1:].shape
    assert (got - port["prediction"]).abs().max().item() < 1e-9


def test_the_paper_composite_is_not_the_ports() -> None:
    cfg, params, frames, port = fixture()
    head = {k: v for k, v in official_head(params).items() if not k.startswith("generated.")}
    got = official_head_predictions(cfg, head, frames, port, composite="paper")
    assert (got - port["prediction"]).abs().max() > 1e-3


@pytest.mark.parametrize("kernels", [1, 3])
def test_an_official_model_predicts_and_only_the_last_kernel_is_unused(kernels: int) -> None:
    """The setting builds a whole model; every head layer gets gradients but the last kernel's
    rows of the kernel layer (its copy is the one dropped; with one kernel, the masks share
    the frame and the generated image)."""
    net = mimcast.create_model(
        "cdna", in_channels=2, height=8, width=8, patch_size=2, hidden=(4, 4),
        cdna_kernels=kernels, cdna_composite="official",
    )  # fmt: skip
    assert net.head.generated.out_channels == 2 * 2 * 2
    out = net(torch.rand(2, 4, 2, 8, 8), context_len=2)
    assert out.shape == (2, 3, 2, 8, 8) and torch.isfinite(out).all()
    out.square().mean().backward()
    for layer in (net.head.masks, net.head.generated):
        assert layer.weight.grad.abs().max() > 0
    used = net.head.kernels.weight.grad.reshape(kernels, 25, -1)
    assert used[-1].abs().max() == 0
    assert all(used[k].abs().max() > 0 for k in range(kernels - 1))
    paper = mimcast.create_model("cdna", in_channels=1, height=8, width=8)
    assert not hasattr(paper.head, "generated")
    with pytest.raises(mimcast.ConfigError, match="applies to the 'cdna' model only"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, cdna_composite="official")
