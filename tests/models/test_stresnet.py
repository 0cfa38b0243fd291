"""ST-ResNet: its residual units, branches, fusion and external branch against a direct NumPy
transcription of the paper's equations (float64), and how it reads frames: closeness from the
frames it read (its own predictions after the context), period, trend and externals from the
data at every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimcast
from mimcast.errors import ConfigError
from mimcast.models.layers import ConvSpec
from mimcast.models.stresnet import ResidualUnit


def conv(x: np.ndarray, conv: torch.nn.Conv2d) -> np.ndarray:
    """'same' convolution, zero padded: out[b, o, y, x] = bias[o] + sum w[o, i, dy, dx]
    * x[b, i, y + dy - r, x + dx - r]."""
    w, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    k = w.shape[-1]
    r = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)))
    out = np.zeros((x.shape[0], w.shape[0], *x.shape[2:])) + bias[None, :, None, None]
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
            out += np.einsum("oi,bihw->bohw", w[:, :, dy, dx], patch)
    return out


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def unit_np(x: np.ndarray, unit: ResidualUnit) -> np.ndarray:
    """X + conv(ReLU(conv(ReLU(X)))), the shortcut a 1x1 convolution where widths differ."""
    short = x if isinstance(unit.shortcut, torch.nn.Identity) else conv(x, unit.shortcut)
    return short + conv(relu(conv(relu(x), unit.conv_a)), unit.conv_b)


def branch_np(x: np.ndarray, branch) -> np.ndarray:
    y = conv(x, branch.conv1)
    for unit in branch.units:
        y = unit_np(y, unit)
    return conv(relu(y), branch.conv2)


def step_np(model: mimcast.Forecaster, frame: np.ndarray, closeness: np.ndarray) -> np.ndarray:
    """One prediction, from the paper's equations: closeness (B, len_c * F, h, w) in [-1, 1]
    holds the frames read (newest first, this one included); the frame's other channels are
    the period and trend frames, then the external factors, of the next slot."""
    stack = model.stack
    f, (_, n_p, n_q) = stack.flows, stack.lens
    period = 2 * frame[:, f : f + n_p * f] - 1
    trend = 2 * frame[:, f + n_p * f : f + (n_p + n_q) * f] - 1
    ext = frame[:, f + (n_p + n_q) * f :, 0, 0]
    outs = [branch_np(v, b) for v, b in zip((closeness, period, trend), stack.layers)]
    w = stack.fusion.weight.detach().numpy()
    fused = w[0] * outs[0] + w[1] * outs[1] + w[2] * outs[2]
    e = stack.external
    emb = relu(ext @ e.embed.weight.detach().numpy().T + e.embed.bias.detach().numpy())
    x_ext = relu(emb @ e.out.weight.detach().numpy().T + e.out.bias.detach().numpy())
    return (np.tanh(fused + x_ext.reshape(fused.shape)) + 1) / 2


def full_model(len_c: int = 2, hidden=(5, 5)) -> mimcast.Forecaster:
    """Two flows, len_p 2 (2 days), len_q 1 (a week), 3 external factors: 2 + 4 + 2 + 3."""
    torch.manual_seed(0)
    return mimcast.create_model(
        "stresnet", in_channels=11, height=6, width=7, hidden=hidden, filter_size=3,
        stresnet_closeness=len_c, stresnet_period=2, stresnet_trend=1, stresnet_externals=3,
    ).double()  # fmt: skip


def frames_with_externals(rng, b: int = 2, t: int = 6) -> torch.Tensor:
    x = rng.random((b, t, 11, 6, 7))
    x[:, :, 8:] = rng.random((b, t, 3, 1, 1))  # externals are constant maps
    return torch.from_numpy(x)


@pytest.mark.parametrize(("c_in", "c_out"), [(4, 4), (3, 5)])
def test_residual_unit_equals_the_equation(c_in: int, c_out: int) -> None:
    torch.manual_seed(1)
    unit = ResidualUnit(c_in, c_out, ConvSpec(3, (5, 6))).double()
    x = np.random.default_rng(0).normal(size=(2, c_in, 5, 6))
    got = unit(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, unit_np(x, unit), rtol=0, atol=1e-9)


def test_the_forecast_is_recursive_and_equals_the_equations_step_by_step() -> None:
    """Free-running after a context of 3: each prediction's flows are read back as the newest
    closeness frame; the period, trend and externals of every step are the data's."""
    model = full_model(len_c=2)
    frames = frames_with_externals(np.random.default_rng(2))
    preds = model(frames, context_len=3).detach().numpy()
    x = frames.numpy()
    read = x[:, 0, :2]
    closeness = np.concatenate([2 * read - 1] * 2, axis=1)  # the first frame stands in
    for t in range(5):
        if t > 0:
            read = x[:, t, :2] if t < 3 else preds[:, t - 1, :2]
            closeness = np.concatenate([2 * read - 1, closeness[:, :2]], axis=1)
        frame = np.concatenate([read, x[:, t, 2:]], axis=1)
        want = step_np(model, frame, closeness)
        np.testing.assert_allclose(preds[:, t, :2], want, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(preds[:, t, 2:], x[:, t + 1, 2:])  # data, not forecast


def test_causality_and_what_each_input_reaches() -> None:
    """Prediction t reads frames 0..t only; after the context the true flows are never read,
    while the given channels of a later frame change the predictions from there on."""
    model = full_model(len_c=3)
    frames = frames_with_externals(np.random.default_rng(3))
    base = model(frames, context_len=3)
    later = frames.clone()
    later[:, 4] = torch.rand(2, 11, 6, 7, dtype=torch.float64)
    changed = model(later, context_len=3)
    torch.testing.assert_close(changed[:, :4, :2], base[:, :4, :2], rtol=0, atol=0)
    assert not torch.allclose(changed[:, 4, :2], base[:, 4, :2])  # frame 4 gives step 4's
    flows_only = frames.clone()
    flows_only[:, 3:, :2] = 0.0  # true flows after the context: never read when free-running
    torch.testing.assert_close(model(flows_only, 3)[:, :, :2], base[:, :, :2], rtol=0, atol=0)
    assert not torch.allclose(model(flows_only, 5)[:, 4, :2], base[:, 4, :2])  # context: read


def test_closeness_only_on_plain_frames() -> None:
    """Without given inputs it is the closeness branch alone (no fusion weight) and predicts
    from a context like any model."""
    torch.manual_seed(0)
    model = mimcast.create_model(
        "stresnet", in_channels=1, height=5, width=5, hidden=(3,), filter_size=3,
        stresnet_closeness=1,
    ).double()  # fmt: skip
    assert model.stack.fusion is None and model.stack.external is None
    frames = torch.rand(2, 4, 1, 5, 5, dtype=torch.float64)
    preds = model(frames, context_len=2)
    for t in range(3):
        read = frames[:, t].numpy() if t < 2 else preds[:, t - 1].detach().numpy()
        want = (np.tanh(branch_np(2 * read - 1, model.stack.layers[0])) + 1) / 2
        np.testing.assert_allclose(preds[:, t].detach().numpy(), want, rtol=0, atol=1e-9)
    torch.testing.assert_close(model.predict(frames[:, :2], 2), preds[:, 1:3].detach())


def test_bad_configurations_are_refused() -> None:
    make = mimcast.create_model
    base = dict(height=6, width=6, hidden=(4,), filter_size=3)
    with pytest.raises(ConfigError, match="10 channels per frame do not split into 3 frames"):
        make("stresnet", in_channels=10, stresnet_period=1, stresnet_trend=1, **base)
    with pytest.raises(ConfigError, match="with given inputs needs model.patch_size 1"):
        make("stresnet", in_channels=4, stresnet_period=1, patch_size=2, **base)
    model = make("stresnet", in_channels=4, stresnet_period=1, **base)
    assert model.stack.given_inputs == (("period", 2),)
    with pytest.raises(ConfigError, match="reads 2 given channels per frame"):
        model.predict(torch.rand(1, 3, 4, 6, 6), 2)
    with pytest.raises(ConfigError, match="applies to the 'stresnet' model only"):
        make("mim", in_channels=4, stresnet_period=1, **base)
