"""VPN: the multiplicative unit and the residual multiplicative block against NumPy in float64,
the dilations, causality over time, the widths and the paper's network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimcast
from mimcast.models.vpn import MultiplicativeUnit, ResidualMultiplicativeBlock


def np_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> np.ndarray:
    """A cross-correlation of x (C, H, W) with weight (O, C, k, k), zero padding that keeps
    the size, taps `dilation` apart: out[o, y, x] = b[o] + sum w[o, c, i, j] x[c, y + d(i - r),
    x + d(j - r)]."""
    _, h, w = x.shape
    k = weight.shape[-1]
    pad = dilation * (k // 2)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((weight.shape[0], h, w)) + bias[:, None, None]
    for i, j in np.ndindex(k, k):
        window = padded[:, i * dilation : i * dilation + h, j * dilation : j * dilation + w]
        out += np.einsum("oc,chw->ohw", weight[:, :, i, j], window)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def np_mu(h: np.ndarray, unit: MultiplicativeUnit, dilation: int) -> np.ndarray:
    """The paper's Section 4.1: g1, g2, g3 = s(W_1..3 * h), u = tanh(W_4 * h),
    MU(h) = g1 o tanh(g2 o h + g3 o u), each W its own convolution of h."""
    weights = np.split(unit.gates.weight.detach().numpy(), 4)  # g1, g2, g3, u
    biases = np.split(unit.gates.bias.detach().numpy(), 4)
    g1, g2, g3, u = (np_conv(h, w, b, dilation) for w, b in zip(weights, biases))
    return sigmoid(g1) * np.tanh(sigmoid(g2) * h + sigmoid(g3) * np.tanh(u))


def np_1x1(h: np.ndarray, conv: torch.nn.Conv2d) -> np.ndarray:
    return np_conv(h, conv.weight.detach().numpy(), conv.bias.detach().numpy())


def scaled_(module: torch.nn.Module, std: float = 0.6) -> torch.nn.Module:
    """Weights large enough that every gate leaves its linear range (the test then sees the
    sigmoids and tanhs), float64."""
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)
    return module


@pytest.mark.parametrize(("k", "dilation"), [(3, 1), (3, 2), (5, 4)])
def test_multiplicative_unit_equals_numpy(k: int, dilation: int) -> None:
    torch.manual_seed(k + dilation)
    unit = scaled_(MultiplicativeUnit(3, k, dilation))
    h = np.random.default_rng(dilation).normal(size=(2, 3, 9, 11))
    got = unit(torch.from_numpy(h)).detach().numpy()
    want = np.stack([np_mu(sample, unit, dilation) for sample in h])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_residual_multiplicative_block_equals_numpy() -> None:
    """RMB(h) = h + W_o * MU(MU(W_i * h)), the MUs half as wide as the block."""
    torch.manual_seed(0)
    block = scaled_(ResidualMultiplicativeBlock(8, 3, dilation=2), std=0.4)
    assert (block.reduce.out_channels, block.expand.in_channels) == (4, 4)
    h = np.random.default_rng(1).normal(size=(8, 7, 6))
    mid = np_mu(np_mu(np_1x1(h, block.reduce), block.units[0], 2), block.units[1], 2)
    want = h + np_1x1(mid, block.expand)
    got = block(torch.from_numpy(h)[None]).detach().numpy()[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_a_block_whose_last_convolution_is_zero_is_the_identity() -> None:
    """The residual form: the input is added to the block's output, unchanged."""
    block = ResidualMultiplicativeBlock(6, 3).double()
    torch.nn.init.zeros_(block.expand.weight)
    torch.nn.init.zeros_(block.expand.bias)
    h = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    assert torch.equal(block(h), h)


def test_a_dilated_unit_reads_taps_dilation_apart() -> None:
    """The output at one pixel depends on the input at offsets {-d, 0, d}^2 only."""
    unit = MultiplicativeUnit(2, 3, dilation=2).double()
    h = torch.randn(1, 2, 9, 9, dtype=torch.float64, requires_grad=True)
    unit(h)[0, :, 4, 4].sum().backward()
    reached = {(y - 4, x - 4) for y, x in zip(*np.nonzero(h.grad[0].abs().sum(0).numpy()))}
    assert reached == {(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)}


def tiny_vpn(**kwargs) -> mimcast.Forecaster:
    base = dict(in_channels=1, height=8, width=12, patch_size=2, hidden=(6,), filter_size=3,
                vpn_encoder_blocks=5, vpn_decoder_blocks=2)  # fmt: skip
    return mimcast.create_model("vpn", **{**base, **kwargs})


def test_encoder_dilations_and_resolution() -> None:
    """Encoder MUs dilated 1, 2, 4, 8, 1, ... block by block; the decoder's not; every map at
    the folded grid's size."""
    model = tiny_vpn(vpn_encoder_blocks=5, vpn_decoder_blocks=3)
    blocks = list(model.stack.encode)[1:]
    assert [b.units[0].gates.dilation for b in blocks] == [(d, d) for d in (1, 2, 4, 8, 1)]
    assert all(b.units[1].gates.dilation == b.units[0].gates.dilation for b in blocks)
    assert [b.units[0].gates.dilation for b in list(model.stack.decode)[1:]] == [(1, 1)] * 3
    assert model.stack.encode(torch.zeros(2, 4, 4, 6)).shape == (2, 6, 4, 6)


def test_a_prediction_never_reads_the_frame_it_predicts_or_later_ones() -> None:
    """All steps fed the true frames: changing frame k changes no prediction of frames <= k
    (the baseline decoder has no input from the frame it generates), and changes the next."""
    model = tiny_vpn(layer_norm=True).double()
    frames = torch.rand(2, 6, 1, 8, 12, dtype=torch.float64)
    with torch.no_grad():
        base = model(frames, context_len=5)  # predictions of frames 1..5
        for k in range(1, 6):
            changed = frames.clone()
            changed[:, k] += torch.rand(2, 1, 8, 12, dtype=torch.float64)
            preds = model(changed, context_len=5)
            assert torch.equal(preds[:, :k], base[:, :k]), k
            if k < 5:
                assert (preds[:, k] - base[:, k]).abs().max() > 1e-6, k


def test_the_state_carries_the_past() -> None:
    """The ConvLSTM is the only path from frame 0 to the prediction of frame 3."""
    model = tiny_vpn().double()
    frames = torch.rand(1, 4, 1, 8, 12, dtype=torch.float64)
    changed = frames.clone()
    changed[:, 0] = 0
    with torch.no_grad():
        assert (model(frames, context_len=3) - model(changed, context_len=3))[:, 2].abs().max() > 0


@pytest.mark.parametrize(
    ("hidden", "widths"),
    [((6,), (6, 6, 6)), ((4, 7), (4, 7, 7)), ((4, 7, 5), (4, 7, 5))],
)
def test_hidden_is_encoder_convlstm_decoder(hidden, widths) -> None:
    model = tiny_vpn(hidden=hidden)
    stack = model.stack
    assert stack.encode[0].out_channels == widths[0]
    assert stack.layers[0].conv_h.conv.in_channels == widths[1]
    assert stack.decode[1].reduce.in_channels == widths[2]
    joined = isinstance(stack.decode[0], torch.nn.Conv2d)  # a 1x1 only where widths differ
    assert joined == (widths[1] != widths[2])
    frames = torch.rand(2, 5, 1, 8, 12)
    assert model(frames, context_len=2).shape == (2, 4, 1, 8, 12)
    assert model.predict(frames[:, :2], horizon=3).shape == (2, 3, 1, 8, 12)


@pytest.mark.parametrize(
    ("hidden", "message"),
    [((4, 4, 4, 4), "at most 3 numbers"), ((1, 8), "at least 2")],
)
def test_bad_widths_are_refused(hidden, message) -> None:
    with pytest.raises(mimcast.ConfigError, match=message):
        tiny_vpn(hidden=hidden)


def test_vpn_settings_belong_to_vpn() -> None:
    with pytest.raises(mimcast.ConfigError, match="vpn_decoder_blocks applies to the 'vpn'"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, vpn_decoder_blocks=3)
    with pytest.raises(mimcast.ConfigError, match="vpn_encoder_blocks must be"):
        tiny_vpn(vpn_encoder_blocks=0)


def test_the_paper_network() -> None:
    """Moving MNIST in the paper: 64 x 64 frames at full resolution, 8 encoder and 12 decoder
    RMBs of 256 channels (MUs of 128, 3x3), a ConvLSTM of 256: every parameter counted."""
    with torch.device("meta"):
        model = mimcast.create_model(
            "vpn", in_channels=1, height=64, width=64, hidden=(256,), filter_size=3
        )
        state = model.stack.initial_state(torch.zeros(1, 1, 64, 64))
    assert tuple(state.h.shape) == tuple(state.c.shape) == (1, 256, 64, 64)
    assert (len(model.stack.encode) - 1, len(model.stack.decode) - 1) == (8, 12)
    mu = 4 * 128 * 128 * 9 + 4 * 128
    rmb = (256 * 128 + 128) + 2 * mu + (128 * 256 + 256)
    lstm = 4 * 256 * 256 * 9 + 4 * 256 + 4 * 256 * 256 * 9  # conv_x with bias, conv_h without
    lift, head = 1 * 256 + 256, 256
    assert sum(p.numel() for p in model.parameters()) == lift + 20 * rmb + lstm + head
