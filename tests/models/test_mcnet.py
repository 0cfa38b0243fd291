"""MCNet: forecasts against the PyTorch port's (tests/fixtures/mcnet_parity.npz, made by
scripts/mcnet_fixture.py), the paper's network, the unpooling, causality and the first step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mimcast
from mimcast.models.mcnet import unpool

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mcnet_parity.npz"


def small(**kwargs) -> mimcast.Forecaster:
    base = dict(in_channels=1, height=16, width=24, hidden=(3, 4, 5), filter_size=3)
    return mimcast.create_model("mcnet", **{**base, **kwargs}).double()


def test_forecasts_equal_the_pytorch_port() -> None:
    """The port's generator (its missing ReLU put back, as the official code has it) with the
    same weights, forecasting 3 frames from 4 in float64: the same frames to 1e-9."""
    data = np.load(FIXTURE)
    model = mimcast.create_model("mcnet", **json.loads(str(data["config"]))).double()
    state = {k.removeprefix("param/"): torch.from_numpy(data[k]).double() for k in data.files
             if k.startswith("param/")}  # fmt: skip
    model.load_state_dict(state)  # (strict: every weight of the model is in the fixture)
    context, expected = torch.from_numpy(data["context"]), data["expected"]
    got = model.predict(context, horizon=expected.shape[1]).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert expected.std() > 0.05  # the forecasts are not a constant both could agree on


def test_the_paper_network() -> None:
    """hidden=(64, 128, 256), filter 3, 128 x 128 grey frames: the port's parameter count
    (14,093,953, counted by the fixture script), a ConvLSTM of 256 channels on 16 x 16."""
    with torch.device("meta"):
        model = mimcast.create_model("mcnet", in_channels=1, height=128, width=128,
                                     hidden=(64, 128, 256), filter_size=3)  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == int(np.load(FIXTURE)["paper_parameters"])
    state = model.stack.initial_state(torch.zeros(1, 1, 128, 128))
    assert tuple(state.motion.h.shape) == (1, 256, 16, 16)
    kernels = [model.stack.motion.first[0].kernel_size[0]]
    kernels += [s[0].kernel_size[0] for s in model.stack.motion.scales]
    assert kernels == [5, 5, 7]
    convs = [len(model.stack.content.first) // 2] + [
        len(s) // 2 for s in model.stack.content.scales
    ]
    assert convs == [2, 2, 3]


def loop_unpool(x: np.ndarray, h: int, w: int) -> np.ndarray:
    out = np.zeros((*x.shape[:2], h, w))
    for b, c, i, j in np.ndindex(*x.shape):
        if 2 * i < h and 2 * j < w:
            out[b, c, 2 * i, 2 * j] = x[b, c, i, j]
    return out


@pytest.mark.parametrize(("h", "w"), [(6, 8), (5, 7)])
def test_unpooling_puts_each_value_top_left_of_its_block(h: int, w: int) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4))
    got = unpool(torch.from_numpy(x), like=torch.zeros(1, 1, h, w)).numpy()
    np.testing.assert_array_equal(got, loop_unpool(x, h, w))


def test_a_prediction_never_depends_on_later_frames() -> None:
    """Changing frames j.. leaves the predictions of frames 1..j (read from frames 0..j-1)
    exactly as they were, and changes the next, for every j."""
    model = small()
    frames = torch.rand(2, 6, 1, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        base = model(frames, context_len=2, mask=torch.ones(1))
        for j in range(1, 6):
            changed = frames.clone()
            changed[:, j:] = torch.rand(2, 6 - j, 1, 16, 24, dtype=torch.float64)
            preds = model(changed, context_len=2, mask=torch.ones(1))
            torch.testing.assert_close(preds[:, :j], base[:, :j], rtol=0, atol=0)
            if j < 5:
                assert (preds[:, j] - base[:, j]).abs().max() > 1e-6, j


def test_the_first_step_sees_no_motion() -> None:
    """Frame 1 is predicted from frame 0 alone: a zero difference and the ConvLSTM's zero
    state, so its weights do not change that prediction (they change the next)."""
    model = small()
    frames = torch.rand(2, 4, 1, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        before = model(frames, context_len=3)
        for p in model.stack.lstm.parameters():
            p.add_(0.5)
        after = model(frames, context_len=3)
    torch.testing.assert_close(before[:, 0], after[:, 0], rtol=0, atol=0)
    assert (before[:, 1] - after[:, 1]).abs().max() > 1e-6


def test_motion_is_the_difference_of_the_frames_read() -> None:
    """The motion encoder reads x_t - x_{t-1} of the frames the steps read: 0 at the first
    step, then true differences, then the forecast minus the last frame read."""
    model = small()
    seen = []
    model.stack.motion.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    frames = torch.rand(2, 4, 1, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        preds = model(frames, context_len=2)
    assert len(seen) == 3 and torch.equal(seen[0], torch.zeros_like(frames[:, 0]))
    torch.testing.assert_close(seen[1], frames[:, 1] - frames[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(seen[2], preds[:, 1] - frames[:, 1], rtol=0, atol=0)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_odd_grids_go_down_and_up_with_every_parameter_learning(layer_norm: bool) -> None:
    """9 x 11 frames halve to 5 x 6, 3 x 3 and 2 x 2 (pooling rounds up; the unpooled maps are
    cropped back); forecasts stay in [0, 1]; every parameter gets a gradient."""
    model = mimcast.create_model(
        "mcnet", in_channels=2, height=9, width=11, hidden=(3, 4, 5), layer_norm=layer_norm
    )
    frames = torch.rand(2, 5, 2, 9, 11)
    preds = model(frames * 10, context_len=2)
    assert preds.shape == (2, 4, 2, 9, 11) and preds.min() >= 0 and preds.max() <= 1
    ((model(frames, context_len=2) - frames[:, 1:]) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
